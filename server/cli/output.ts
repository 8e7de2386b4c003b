// Writing results: JSON on one line for scripts, token text quoted for humans.

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A token's text for display: JSON-quoted so spaces, newlines and control bytes are visible. */
export function showPiece(text: string): string {
  return JSON.stringify(text);
}
