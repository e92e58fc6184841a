// Shared by the k6 scenarios of issue #7: sensor identities, capture-shaped requests, and the
// summary every run prints (req/s, MB/s, p50/p99). Environment:
//   TARGET    base URL of the proxy under test (default http://127.0.0.1:7200)
//   BODIES    directory written by loadtest/compare (bulk-<sensor>.ndjson[.gz])
//   SENSORS   number of sensors (s01..sNN, password = name); default 8
//   SUMMARY   optional path for the JSON summary (read by loadtest/compare)
import http from 'k6/http';
import { check } from 'k6';
import encoding from 'k6/encoding';

export const TARGET = __ENV.TARGET || 'http://127.0.0.1:7200';
export const BODIES = __ENV.BODIES || '/tmp/esproxy-loadtest/bodies';
export const SENSORS = parseInt(__ENV.SENSORS || '8', 10);

/** Sensor name for a 1-based index: s01, s02, … (each its own credentials and node). */
export function sensorName(i) {
  return 's' + String(i).padStart(2, '0');
}

/** The sensor this VU plays (VU 0 is k6's init pass). */
export function mySensor() {
  const vu = __VU > 0 ? __VU : 1;
  return sensorName(((vu - 1) % SENSORS) + 1);
}

function auth(name) {
  return 'Basic ' + encoding.b64encode(`${name}:${name}`);
}

/** Loads this VU's own bulk bodies (plain and gzip), in the init context only. */
export function loadBodies() {
  if (__VU === 0) {
    // k6 lets a VU open only files that the first init pass (VU 0) opened: register them all.
    for (let i = 1; i <= SENSORS; i++) {
      open(`${BODIES}/bulk-${sensorName(i)}.ndjson`, 'b');
      open(`${BODIES}/bulk-${sensorName(i)}.ndjson.gz`, 'b');
    }
  }
  const s = mySensor();
  return {
    plain: open(`${BODIES}/bulk-${s}.ndjson`, 'b'),
    gzip: open(`${BODIES}/bulk-${s}.ndjson.gz`, 'b'),
  };
}

function ok(res, what) {
  return check(res, { [`${what} 2xx`]: (r) => r.status >= 200 && r.status < 300 });
}

/** One capture `_bulk` (plain or gzip, as capture sends with compressES). */
export function bulk(bodies, gz) {
  const s = mySensor();
  const headers = { Authorization: auth(s), 'Content-Type': 'application/json' };
  if (gz) headers['Content-Encoding'] = 'gzip';
  const res = http.post(`${TARGET}/_bulk`, gz ? bodies.gzip : bodies.plain, {
    headers,
    tags: { kind: gz ? 'bulk_gzip' : 'bulk_plain' },
  });
  ok(res, 'bulk');
}

let version = 0;

/** capture's stats document (~800 B), written with the sensor's own nodeName. */
function statsDoc(s, interval) {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({
    ver: '6.7.1-GIT', nodeName: s, hostname: `${s}.example`, interval,
    currentTime: now, usedSpaceM: 120, freeSpaceM: 83950, freeSpaceP: 31.03, monitoring: 4,
    memory: 818933760, memoryP: 3.24, cpu: 5593, diskQueue: 0, esQueue: 0, packetQueue: 0,
    fragsQueue: 0, frags: 0, needSave: 0, closeQueue: 0, totalPackets: 123456789,
    totalK: 987654, totalSessions: 424242, totalDropped: 0, tcpSessions: 1200,
    udpSessions: 300, icmpSessions: 2, sctpSessions: 0, espSessions: 0, otherSessions: 0,
    deltaPackets: 12345, deltaBytes: 9876543, deltaWrittenBytes: 987654, deltaUnwrittenBytes: 0,
    deltaSessions: 420, deltaSessionBytes: 654321, deltaDropped: 0, deltaFragsDropped: 0,
    deltaOverloadDropped: 0, deltaESDropped: 0, esHealthMS: 3, deltaMS: interval * 1000,
    startTime: now - 3600,
  });
}

/** The periodic small requests of one capture: stats, dstats, health, sequence, files. */
export function small() {
  const s = mySensor();
  const h = { Authorization: auth(s), 'Content-Type': 'application/json' };
  version += 1;
  const reqs = [
    ['POST', `${TARGET}/arkime_stats/_doc/${s}?version_type=external&version=${version}`, statsDoc(s, 2), 'stats'],
    ['POST', `${TARGET}/arkime_dstats/_doc/${s}-${version % 1440}-5`, statsDoc(s, 5), 'dstats'],
    ['GET', `${TARGET}/_cluster/health`, null, 'health'],
    ['POST', `${TARGET}/arkime_sequence/_doc/fn-${s}?version_type=external&version=${100 + version}`, '{}', 'sequence'],
    ['POST', `${TARGET}/arkime_files/_doc/${s}-${version}?refresh=true`,
      `{"num":${version}, "name":"/data/pcap/${s}-260819-${version}.pcap", "first":1795348557, "node":"${s}", "filesize":0, "locked":1, "packetPosEncoding": "gap0", "scheme": "file", "startTimestamp":1795348654257, "firstTimestamp":1795348557001}`,
      'files'],
  ];
  for (const [method, url, body, kind] of reqs) {
    // name: one time series per kind, not per URL (ids and versions vary).
    const res = http.request(method, url, body, { headers: h, tags: { kind, name: kind } });
    ok(res, kind);
  }
}

/** Fail the run on any non-2xx for legit traffic. */
export const thresholds = {
  checks: ['rate==1'],
  http_req_failed: ['rate==0'],
};

/** The latency statistics every script reports (p50 is k6's `med`). */
export const TREND_STATS = ['med', 'p(99)', 'max'];

/** Options of a closed-model run: VUS users (default 8) for DURATION (default 20s). */
export function constantVus() {
  return {
    vus: parseInt(__ENV.VUS || '8', 10),
    duration: __ENV.DURATION || '20s',
    thresholds,
    summaryTrendStats: TREND_STATS,
  };
}

/** Prints req/s, MB/s and p50/p99 (ms) and writes the same as JSON to $SUMMARY. */
export function summary(data) {
  const m = data.metrics;
  const dur = data.state.testRunDurationMs / 1000;
  const reqs = m.http_reqs ? m.http_reqs.values.count : 0;
  const sent = m.data_sent ? m.data_sent.values.count : 0;
  const d = m.http_req_duration ? m.http_req_duration.values : {};
  const failed = m.http_req_failed ? m.http_req_failed.values.passes || 0 : 0;
  const out = {
    seconds: dur,
    requests: reqs,
    req_per_s: reqs / dur,
    mb_per_s: sent / dur / 1e6,
    p50_ms: d.med,
    p99_ms: d['p(99)'],
    non_2xx: failed,
    checks_ok: m.checks ? m.checks.values.rate : null,
  };
  const text = `k6: ${reqs} requests in ${dur.toFixed(1)} s: ${out.req_per_s.toFixed(1)} req/s, `
    + `${out.mb_per_s.toFixed(1)} MB/s sent, p50 ${Number(d.med).toFixed(2)} ms, `
    + `p99 ${Number(d['p(99)']).toFixed(2)} ms, non-2xx ${failed}\n`;
  const res = { stdout: text };
  if (__ENV.SUMMARY) res[__ENV.SUMMARY] = JSON.stringify(out);
  return res;
}
