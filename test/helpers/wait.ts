/**
 * Resolves once `predicate` holds, checking it every `intervalMs`; fails with "timed out
 * waiting for `what`" after `ms`.
 */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  ms = 20_000,
  what = 'condition',
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
