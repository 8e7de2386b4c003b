// How a long prefill (the server's PrefillStatus) reads in the status bar and the chat view.
import type { PrefillStatus } from '../server/protocol';

/** "45s", "12m", "1h 20m". */
export function shortDuration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))}s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `${minutes}m` : `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

export function prefillPercent(p: PrefillStatus): string {
  return `${Math.floor((p.done / Math.max(1, p.total)) * 100)}%`;
}

/** "Reading the workspace: 42% · 12,288 / 29,000 tokens · about 54s left". */
export function prefillLine(p: PrefillStatus): string {
  const parts = [`${p.title}: ${prefillPercent(p)}`, `${p.done.toLocaleString('en-US')} / ${p.total.toLocaleString('en-US')} tokens`];
  if (p.secondsLeft !== undefined) parts.push(`about ${shortDuration(p.secondsLeft)} left`);
  return parts.join(' · ');
}
