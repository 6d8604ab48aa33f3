export { runDemo, DEFAULT_SCENARIO } from './demo';
export type { DemoOptions } from './demo';
