// The agent's side of the chained CNI plugin (the plugin itself is the Go program of cni-plugin/):
// installing it on the node, the socket it asks, the gate that holds a pod's start until its rules are
// committed, and the watcher that keeps it chained.
export { CniPodGate, CommitTracker, pluginAddress } from './gate';
export type { CniAddRequest, CniAnswer } from './gate';
export { CniServer, DEFAULT_CNI_SOCKET } from './server';
export { ConfWatcher } from './conf-watcher';
export type { ConfCheck } from './conf-watcher';
export { ORIGINAL_SUFFIX, PLUGIN_TYPE, UNINSTALL_MARKER, activeConfFile, chainPlugin, chainedEntry, installPlugin, pluginEntry, uninstallPlugin, waitForConf } from './install';
export type { FailurePolicy, InstallOptions, PluginSettings } from './install';
