// The version is stamped in by the build (scripts/build.mjs); tests run from source.
declare const __SUPERVISOR_VERSION__: string | undefined;

export const VERSION: string = typeof __SUPERVISOR_VERSION__ === 'string' ? __SUPERVISOR_VERSION__ : '0.0.0-dev';
