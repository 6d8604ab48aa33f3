// A pod of the synthetic cluster as kube-apiserver serves it in a list or a watch event (JSON, every
// field the server fills in): a Deployment replica with one container, its ReplicaSet owner, the
// projected service-account volume the admission plugin adds, default tolerations, the managedFields
// of kube-controller-manager and kubelet, and the kubelet's status with five conditions and one
// container status. Its shape follows `kubectl get pod -o json` of such a pod on Kubernetes 1.34; the
// values are synthetic. The agent reads a few hundred bytes of it.
import { createHash } from 'node:crypto';
import type { PodState } from '../src/api';

/** Where a pod is in its life; each step is one write to the API server (one watch event). */
export type PodStage = 'pending' | 'scheduled' | 'running' | 'ready' | 'terminating';

function hex(seed: string, length: number): string {
  let out = '';
  for (let i = 0; out.length < length; i++) out += createHash('sha256').update(`${seed}/${i}`).digest('hex');
  return out.slice(0, length);
}

function uid(seed: string): string {
  const h = hex(seed, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const T0 = Date.parse('2026-11-30T09:12:44Z');
const iso = (offsetSeconds: number): string => new Date(T0 + offsetSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

const field = (): Record<string, never> => ({});
const condition = (type: string, status: string, at: number): object => ({ type, status, lastProbeTime: null, lastTransitionTime: iso(at) });
const conditionFields = (): object => ({ '.': field(), 'f:lastProbeTime': field(), 'f:lastTransitionTime': field(), 'f:status': field(), 'f:type': field() });

/** A namespace as the API server serves it. */
export function servedNamespace(name: string, labels: Readonly<Record<string, string>>): Record<string, unknown> {
  return {
    kind: 'Namespace', apiVersion: 'v1',
    metadata: {
      name, uid: uid(`namespace/${name}`), resourceVersion: '1', creationTimestamp: iso(-86400), labels,
      managedFields: [{
        manager: 'kubectl-create', operation: 'Update', apiVersion: 'v1', time: iso(-86400), fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:labels': Object.fromEntries([['.', field()], ...Object.keys(labels).map((k) => [`f:${k}`, field()])]) } },
      }],
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export function servedPod(pod: PodState, stage: PodStage = 'ready', seq = 0): Record<string, unknown> {
  const app = pod.labels['app'] ?? pod.name.replace(/-\d+$/, '');
  const templateHash = hex(`${pod.namespace}/${app}`, 10).replace(/[0-9]/g, (d) => 'bcdfghjklm'[Number(d)] ?? 'x');
  const replicaSet = `${app}-${templateHash}`;
  const ownerUid = uid(`${pod.namespace}/${replicaSet}`);
  const image = `registry.example.com/${pod.namespace}/${app}:1.42.${seq % 10}`;
  const token = `kube-api-access-${hex(pod.name, 5).replace(/[0-9]/g, 'x')}`;
  const ports = pod.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.port, protocol: p.protocol }));
  const probePort = pod.ports[0]?.port ?? 8080;
  const scheduled = stage !== 'pending';
  const started = stage === 'running' || stage === 'ready' || stage === 'terminating';
  const ready = stage === 'ready' || stage === 'terminating';
  const nodeNumber = Number(pod.nodeName.replace(/\D/g, ''));
  const hostIp = `172.18.${(nodeNumber >> 8) & 255}.${nodeNumber & 255}`;
  const ip = pod.ips[0] ?? '10.1.0.1';
  const metadata: Record<string, unknown> = {
    name: pod.name,
    generateName: `${replicaSet}-`,
    namespace: pod.namespace,
    uid: uid(`${pod.namespace}/${pod.name}/${pod.uid}/${seq}`),
    resourceVersion: '1',
    creationTimestamp: iso(0),
    labels: { ...pod.labels, 'pod-template-hash': templateHash },
    annotations: { 'kubectl.kubernetes.io/restartedAt': iso(-4) },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: replicaSet, uid: ownerUid, controller: true, blockOwnerDeletion: true }],
    managedFields: [
      {
        manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: iso(0), fieldsType: 'FieldsV1',
        fieldsV1: {
          'f:metadata': {
            'f:annotations': { '.': field(), 'f:kubectl.kubernetes.io/restartedAt': field() },
            'f:generateName': field(),
            'f:labels': Object.fromEntries([['.', field()], ...Object.keys(pod.labels).map((k) => [`f:${k}`, field()]), ['f:pod-template-hash', field()]]),
            'f:ownerReferences': { '.': field(), [`k:{"uid":"${ownerUid}"}`]: field() },
          },
          'f:spec': {
            'f:containers': {
              'k:{"name":"app"}': {
                '.': field(), 'f:env': { '.': field(), 'k:{"name":"LOG_LEVEL"}': { '.': field(), 'f:name': field(), 'f:value': field() }, 'k:{"name":"POD_NAME"}': { '.': field(), 'f:name': field(), 'f:valueFrom': { '.': field(), 'f:fieldRef': field() } } },
                'f:image': field(), 'f:imagePullPolicy': field(), 'f:name': field(),
                'f:ports': Object.fromEntries([['.', field()], ...pod.ports.map((p) => [`k:{"containerPort":${p.port},"protocol":"${p.protocol}"}`, { '.': field(), 'f:containerPort': field(), 'f:name': field(), 'f:protocol': field() }])]),
                'f:readinessProbe': { '.': field(), 'f:failureThreshold': field(), 'f:httpGet': { '.': field(), 'f:path': field(), 'f:port': field(), 'f:scheme': field() }, 'f:periodSeconds': field(), 'f:successThreshold': field(), 'f:timeoutSeconds': field() },
                'f:resources': { '.': field(), 'f:limits': { '.': field(), 'f:memory': field() }, 'f:requests': { '.': field(), 'f:cpu': field(), 'f:memory': field() } },
                'f:terminationMessagePath': field(), 'f:terminationMessagePolicy': field(),
              },
            },
            'f:dnsPolicy': field(), 'f:enableServiceLinks': field(), 'f:restartPolicy': field(), 'f:schedulerName': field(),
            'f:securityContext': field(), 'f:terminationGracePeriodSeconds': field(),
          },
        },
      },
      ...(started ? [{
        manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: iso(ready ? 9 : 3), fieldsType: 'FieldsV1', subresource: 'status',
        fieldsV1: {
          'f:status': {
            'f:conditions': {
              'k:{"type":"ContainersReady"}': conditionFields(), 'k:{"type":"Initialized"}': conditionFields(),
              'k:{"type":"PodReadyToStartContainers"}': conditionFields(), 'k:{"type":"Ready"}': conditionFields(),
            },
            'f:containerStatuses': field(), 'f:hostIP': field(), 'f:hostIPs': field(), 'f:phase': field(), 'f:podIP': field(),
            'f:podIPs': { '.': field(), [`k:{"ip":"${ip}"}`]: { '.': field(), 'f:ip': field() } }, 'f:startTime': field(),
          },
        },
      }] : []),
    ],
  };
  if (stage === 'terminating') {
    metadata['deletionTimestamp'] = iso(3600);
    metadata['deletionGracePeriodSeconds'] = 30;
  }
  const spec: Record<string, unknown> = {
    volumes: [{
      name: token,
      projected: {
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
        defaultMode: 420,
      },
    }],
    containers: [{
      name: 'app', image, ports,
      env: [{ name: 'LOG_LEVEL', value: 'info' }, { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }],
      resources: { limits: { memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
      volumeMounts: [{ name: token, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
      readinessProbe: { httpGet: { path: '/healthz', port: probePort, scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
      terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
    }],
    restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst',
    serviceAccountName: 'default', serviceAccount: 'default',
    ...(scheduled ? { nodeName: pod.nodeName } : {}),
    securityContext: {}, schedulerName: 'default-scheduler',
    tolerations: [
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    ],
    priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
  };
  const status: Record<string, unknown> = { phase: started ? 'Running' : 'Pending', qosClass: 'Burstable' };
  if (scheduled) status['conditions'] = [condition('PodScheduled', 'True', 0)];
  if (started) {
    status['conditions'] = [
      condition('PodReadyToStartContainers', 'True', 3), condition('Initialized', 'True', 0),
      condition('Ready', ready ? 'True' : 'False', ready ? 9 : 0), condition('ContainersReady', ready ? 'True' : 'False', ready ? 9 : 0),
      condition('PodScheduled', 'True', 0),
    ];
    Object.assign(status, {
      hostIP: hostIp, hostIPs: [{ ip: hostIp }], podIP: ip, podIPs: pod.ips.map((a) => ({ ip: a })), startTime: iso(0),
      containerStatuses: [{
        name: 'app', state: { running: { startedAt: iso(3) } }, lastState: {}, ready, restartCount: 0, image,
        imageID: `registry.example.com/${pod.namespace}/${app}@sha256:${hex(image, 64)}`,
        containerID: `containerd://${hex(`${pod.namespace}/${pod.name}/${seq}`, 64)}`, started: true,
        volumeMounts: [{ name: token, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true, recursiveReadOnly: 'Disabled' }],
      }],
    });
  }
  return { kind: 'Pod', apiVersion: 'v1', metadata, spec, status };
}
