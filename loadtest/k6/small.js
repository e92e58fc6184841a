// The periodic small requests of many sensors (stats, dstats, health, sequence, files), as fast
// as they go: measures per-request overhead. Fails on any non-2xx. DURATION, VUS.
import { constantVus, small, summary as sum } from './lib.js';

export const options = constantVus();

export default function () {
  small();
}

export function handleSummary(data) {
  return sum(data);
}
