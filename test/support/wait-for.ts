/** Polls until `check` holds (for effects that travel over pub/sub); fails with `what` after a generous bound. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, boundMs = 5_000): Promise<void> {
  const end = Date.now() + boundMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
