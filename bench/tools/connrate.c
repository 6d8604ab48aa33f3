/*
 * connrate: a new-TCP-connections-per-second load generator for bench/dataplane.ts.
 * Compiled at run time (cc -O2) into build/bench/tools/connrate; run inside a pod's netns.
 *
 *   connrate client IP PORT SECONDS
 *       opens a TCP connection, closes it with SO_LINGER 0 (RST: no TIME_WAIT), in a loop for
 *       SECONDS; prints "connections=N errors=E seconds=S first_error=..." on one line.
 *       A connect that takes more than 1 s (a dropped SYN) counts as an error.
 *   connrate syn IP PORT SECONDS
 *       opens a TCP connection without waiting for it (non-blocking connect: one SYN, a new
 *       connection for conntrack) and closes it at once, in a loop for SECONDS; prints the same line,
 *       connections= counting the SYNs sent. Measures what the node sustains, dropped or forwarded.
 *   connrate server PORT MAX_SECONDS
 *       accepts TCP connections on [::]:PORT (or 0.0.0.0 when the netns has no IPv6) and closes
 *       each at once; prints "ready" once listening; exits after MAX_SECONDS or when its parent dies.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int client(const char *ip, int port, double seconds, int syn_only) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof ss);
  int family;
  if (strchr(ip, ':') != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((unsigned short)port);
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) { fprintf(stderr, "bad address %s\n", ip); return 2; }
    len = sizeof *a;
    family = AF_INET6;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) { fprintf(stderr, "bad address %s\n", ip); return 2; }
    len = sizeof *a;
    family = AF_INET;
  }
  struct linger lg = { 1, 0 };
  struct timeval tv = { 1, 0 };
  int one = 1;
  long ok = 0, errors = 0;
  char first_error[128] = "none";
  double start = now(), end = start + seconds, t = start;
  while (t < end) {
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | (syn_only ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) { perror("socket"); return 2; }
    if (syn_only) {
      if (connect(fd, (struct sockaddr *)&ss, len) == 0 || errno == EINPROGRESS) ok++;
      else {
        if (errors == 0) snprintf(first_error, sizeof first_error, "%s", strerror(errno));
        errors++;
      }
      close(fd);
      t = now();
      continue;
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&ss, len) == 0) ok++;
    else {
      if (errors == 0) snprintf(first_error, sizeof first_error, "%s", strerror(errno));
      errors++;
    }
    close(fd);
    t = now();
  }
  printf("connections=%ld errors=%ld seconds=%.3f first_error=%s\n", ok, errors, t - start, first_error);
  return 0;
}

static int server(int port, int max_seconds) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;
  alarm((unsigned)max_seconds);
  int one = 1;
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((unsigned short)port);
    a.sin6_addr = in6addr_any;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); fd = -1; }
  }
  if (fd < 0) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); return 2; }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); return 2; }
  }
  if (listen(fd, 4096) != 0) { perror("listen"); return 2; }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) close(c);
    else if (errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE) { perror("accept"); return 2; }
  }
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "client") == 0) return client(argv[2], atoi(argv[3]), atof(argv[4]), 0);
  if (argc == 5 && strcmp(argv[1], "syn") == 0) return client(argv[2], atoi(argv[3]), atof(argv[4]), 1);
  if (argc == 4 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]), atoi(argv[3]));
  fprintf(stderr, "usage: connrate client|syn IP PORT SECONDS | connrate server PORT MAX_SECONDS\n");
  return 2;
}
