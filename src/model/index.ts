export { hasFinished, parseNamespace, parsePod, parseNetworkPolicy, isIanaServiceName, NAMESPACE_NAME_LABEL } from './parse';
