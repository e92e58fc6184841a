// Mixed run, shaped like a fleet: SENSORS bulk writers (plain and gzip alternating, each its
// own sensor) plus the same sensors' periodic small requests at capture's cadence (one round
// per sensor every 2 s, compressed in time by RATE). Fails on any non-2xx. DURATION.
import { bulk, small, loadBodies, summary as sum, thresholds, SENSORS, TREND_STATS } from './lib.js';

const bodies = loadBodies();
const duration = __ENV.DURATION || '20s';

export const options = {
  thresholds,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    bulk: {
      executor: 'constant-vus',
      exec: 'ingest',
      vus: SENSORS,
      duration,
    },
    periodic: {
      executor: 'constant-arrival-rate',
      exec: 'periodic',
      rate: parseInt(__ENV.RATE || String(SENSORS), 10),
      timeUnit: '1s',
      duration,
      preAllocatedVUs: SENSORS,
    },
  },
};

export function ingest() {
  bulk(bodies, __ITER % 2 === 1);
}

export function periodic() {
  small();
}

export function handleSummary(data) {
  return sum(data);
}
