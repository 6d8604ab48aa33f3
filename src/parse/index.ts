export { hasFinished, parseNamespace, parsePod, parseNetworkPolicy, isIanaServiceName, NAMESPACE_NAME_LABEL, ENFORCEMENT_ANNOTATION } from './kubernetes-objects';
