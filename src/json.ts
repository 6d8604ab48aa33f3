// Parsed JSON and YAML arrive as `unknown`: the one test for "an object with fields" (not null, not an array).

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
