// prep.mjs - turns `waymark gen` NDJSON into the rows every engine loads.
//
//   node prep.mjs GEN_NDJSON OUTDIR [--no-waymark]
//
// GEN_NDJSON may be a pipe (/dev/stdin): the generator's output is read once
// and never stored. Keeps the track events (type "track"; not $SignUp /
// $BindID, profiles or items) as user, event, time_ms, channel, fund_code,
// where user is the dense rank (1..N) of the distinct_id string in byte
// order: the anchors' `user = distinct_id`, not identity-resolved.
//
// Writes, in the generator's order:
//   OUTDIR/events.tsv      user \t event \t time_ms \t channel \t fund_code
//                          (fund_code "" when absent), for ClickHouse and DuckDB
//   OUTDIR/waymark.ndjson  the same rows as Sensors track records that carry
//                          only distinct_id (no login_id, anonymous_id or
//                          identities), so Waymark sees one customer per
//                          distinct_id and no merges: its answers can equal
//                          the other engines' exactly (not with --no-waymark)
//   OUTDIR/prep.json       counts: rows, users, events (names), first/last day
import { DuckDBInstance } from '@duckdb/node-api';

const [src, out, flag] = process.argv.slice(2);
if (!src || !out) {
    console.error('usage: node prep.mjs GEN_NDJSON OUTDIR');
    process.exit(2);
}
const q = (s) => `'${s.replaceAll("'", "''")}'`;
// A database file under OUTDIR, not :memory:: at the 100m scale the rows (~19 GB in memory)
// must be able to leave memory; run.sh removes OUTDIR, the file is removed at the end here.
const fs = await import('node:fs');
const dbfile = out + '/prep.duckdb';
fs.rmSync(dbfile, { force: true });
const db = await DuckDBInstance.create(dbfile, { threads: '2', temp_directory: out + '/prep.tmp',
                                                memory_limit: '8GB' });
const c = await db.connect();
const t0 = performance.now();
await c.run(`CREATE TABLE raw AS
  SELECT row_number() OVER () AS ord, event, distinct_id, time AS time_ms,
         properties.channel AS channel, properties.fund_code AS fund_code
  FROM read_ndjson(${q(src)}, format = 'newline_delimited',
       columns = {type: 'VARCHAR', event: 'VARCHAR', distinct_id: 'VARCHAR', time: 'BIGINT',
                  properties: 'STRUCT(channel VARCHAR, fund_code VARCHAR)'})
  WHERE type = 'track'`);
await c.run(`CREATE TABLE users AS
  SELECT distinct_id, row_number() OVER (ORDER BY distinct_id) AS uid
  FROM (SELECT DISTINCT distinct_id FROM raw)`);
await c.run(`COPY (SELECT u.uid, r.event, r.time_ms, coalesce(r.channel, ''), coalesce(r.fund_code, '')
                   FROM raw r JOIN users u USING (distinct_id) ORDER BY r.ord)
             TO ${q(out + '/events.tsv')} (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')`);
if (flag !== '--no-waymark')
    await c.run(`COPY (SELECT '{"type":"track","event":' || to_json(event) || ',"distinct_id":' || to_json(distinct_id) ||
                          ',"time":' || time_ms || ',"properties":{"channel":' || to_json(coalesce(channel, '')) ||
                          coalesce(',"fund_code":' || to_json(fund_code), '') || '}}'
                   FROM raw ORDER BY ord)
             TO ${q(out + '/waymark.ndjson')} (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')`);
const r = (await c.runAndReadAll(`SELECT count(*), count(DISTINCT distinct_id),
      min((time_ms + 28800000) // 86400000), max((time_ms + 28800000) // 86400000) FROM raw`)).getRows()[0];
const ev = (await c.runAndReadAll(`SELECT DISTINCT event FROM raw ORDER BY event`)).getRows().map((x) => x[0]);
const info = {
    rows: Number(r[0]), users: Number(r[1]), first_day: Number(r[2]), last_day: Number(r[3]),
    events: ev, seconds: +((performance.now() - t0) / 1000).toFixed(1),
};
fs.writeFileSync(out + '/prep.json', JSON.stringify(info) + '\n');
console.error(`prep: ${info.rows} track rows, ${info.users} distinct_ids, ${ev.length} event names, ${info.seconds} s`);
c.closeSync();
db.closeSync();
for (const f of [dbfile, dbfile + '.wal']) fs.rmSync(f, { force: true });
fs.rmSync(out + '/prep.tmp', { recursive: true, force: true });
