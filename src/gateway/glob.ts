// The `[gateway.models]` patterns: `*` is any run of characters, `?` one
// character, everything else literal; matching ignores case, as model names do.

/** Compiles one pattern into an anchored, case-insensitive RegExp. */
export function compileGlob(pattern: string): RegExp {
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else source += char.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'is');
}

/**
 * A model name as routing compares it: trimmed, lower case, without Claude Code's
 * context-size suffix (`claude-sonnet-4-6[1m]` → `claude-sonnet-4-6`).
 */
export function normalizeModelName(model: string): string {
  return model.trim().toLowerCase().replace(/\[[^\]]*\]$/, '');
}
