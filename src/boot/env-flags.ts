// Environment switches for boot, read one way everywhere: `1/true/yes/on` are
// on, `0/false/no/off` and empty are off, anything else is off with a warning
// that names the variable and its value (upstream silently took `yes` as off).

/** A value read from the environment, with the warning to log when it was not understood. */
export interface EnvValue<T> {
  value: T;
  warning?: string;
}

const ON = new Set(['1', 'true', 'yes', 'on']);
const OFF = new Set(['', '0', 'false', 'no', 'off']);

/** Reads a boolean variable; unset gives `defaultValue`, an unknown value gives off and a warning. */
export function readBool(env: NodeJS.ProcessEnv, name: string, defaultValue: boolean): EnvValue<boolean> {
  const raw = env[name];
  if (raw === undefined) return { value: defaultValue };
  const word = raw.trim().toLowerCase();
  if (ON.has(word)) return { value: true };
  if (OFF.has(word)) return { value: false };
  return {
    value: false,
    warning: `${name}=${JSON.stringify(raw)} is not a boolean (on: 1, true, yes, on; off: 0, false, no, off, empty); treating it as off`,
  };
}

/** Reads a positive number of seconds; unset or empty gives `defaultValue`, anything else invalid gives it too, with a warning. */
export function readSeconds(env: NodeJS.ProcessEnv, name: string, defaultValue: number): EnvValue<number> {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return { value: defaultValue };
  const seconds = Number(raw.trim());
  if (Number.isFinite(seconds) && seconds > 0) return { value: seconds };
  return {
    value: defaultValue,
    warning: `${name}=${JSON.stringify(raw)} is not a positive number of seconds; using the default ${defaultValue}`,
  };
}

/** Reads a string variable; unset and blank both give null. */
export function readText(env: NodeJS.ProcessEnv, name: string): string | null {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? null : raw.trim();
}
