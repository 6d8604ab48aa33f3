# The cluster's PKI with openssl (ECDSA P-256 certificates, an RSA service-account key), and kubeconfigs.
# Usage: . lib/pki.sh; make_pki DIR NODE_NAME NODE_IP

_pki_key_and_csr() { # DIR NAME SUBJECT
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1/$2.key" -subj "$3" -out "$1/$2.csr" 2>/dev/null
}

_pki_sign() { # DIR NAME EXTENSIONS
  printf '%s\n' "$3" > "$1/$2.ext"
  openssl x509 -req -in "$1/$2.csr" -CA "$1/ca.crt" -CAkey "$1/ca.key" -set_serial "0x$(openssl rand -hex 12)" \
    -days 7 -extfile "$1/$2.ext" -out "$1/$2.crt" 2>/dev/null
  rm -f "$1/$2.csr" "$1/$2.ext"
}

client_cert() { # DIR NAME SUBJECT
  _pki_key_and_csr "$1" "$2" "$3"
  _pki_sign "$1" "$2" $'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'
}

serving_cert() { # DIR NAME SUBJECT SANS
  _pki_key_and_csr "$1" "$2" "$3"
  _pki_sign "$1" "$2" $'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName='"$4"
}

make_pki() { # DIR NODE_NAME NODE_IP
  local dir=$1 node=$2 ip=$3
  mkdir -p "$dir"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/ca.key" \
    -subj "/CN=netpol-e2e-ca" -days 7 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$dir/ca.crt" 2>/dev/null
  serving_cert "$dir" apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$ip,IP:10.96.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  node_certs "$dir" "" "$node" "$ip"
  client_cert "$dir" admin "/O=system:masters/CN=e2e-admin"
  client_cert "$dir" controller-manager "/CN=system:kube-controller-manager"
  client_cert "$dir" scheduler "/CN=system:kube-scheduler"
  client_cert "$dir" kube-proxy "/CN=system:kube-proxy"
  client_cert "$dir" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key" 2>/dev/null
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  chmod 600 "$dir"/*.key
}

# A node's kubelet certificates: kubeletSUFFIX (client, in system:nodes, as the Node authorizer wants) and
# kubelet-servingSUFFIX (its HTTPS endpoint, for the node's IP).
node_certs() { # DIR SUFFIX NODE_NAME NODE_IP
  serving_cert "$1" "kubelet-serving$2" "/CN=$3" "IP:$4,DNS:$3"
  client_cert "$1" "kubelet$2" "/O=system:nodes/CN=system:node:$3"
}

# A kubeconfig with a client certificate (NAME.crt/.key in DIR) or a bearer token.
write_kubeconfig() { # OUT SERVER CA_FILE USER (cert:DIR/NAME | token:TOKEN)
  local out=$1 server=$2 ca=$3 user=$4 credentials
  case $user in
    cert:*) credentials="    client-certificate: ${user#cert:}.crt
    client-key: ${user#cert:}.key" ;;
    token:*) credentials="    token: ${user#token:}" ;;
    *) echo "write_kubeconfig: bad user $user" >&2; return 1 ;;
  esac
  cat > "$out" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: e2e
  user:
$credentials
contexts:
- name: e2e
  context: {cluster: e2e, user: e2e}
current-context: e2e
YAML
  chmod 600 "$out"
}
