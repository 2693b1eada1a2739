// duck.mjs - the DuckDB side of bench/analytics/run.sh (@duckdb/node-api).
//
//   node duck.mjs load DBFILE EVENTS_TSV SCHEMA_SQL
//       creates the native table ev from the TSV written by prep.mjs, rows in
//       (user, time_ms) order like ClickHouse's ORDER BY; CHECKPOINT; prints
//       {"seconds":s,"file_bytes":b,"used_bytes":u} (used = blocks in use x block size)
//   node duck.mjs query DBFILE SQL_FILE OUT_TSV RUNS
//       1 warm-up + RUNS timed runs of the query (in-process wall time of
//       runAndReadAll, result rows included); the answer as TSV in OUT_TSV;
//       prints {"ms":[...],"rss_mb":m}: m = the process's peak RSS (VmHWM)
//       over the timed runs, reset before each through /proc/self/clear_refs
//       (so it is this query's peak, the database's cached blocks included)
//
// DuckDB runs with threads=2 (the machine's cores), its default memory limit.
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs';

const [mode, dbfile, ...args] = process.argv.slice(2);
const q = (s) => `'${s.replaceAll("'", "''")}'`;

function hwmKb() {
    const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : 0;
}
function resetHwm() {
    try { fs.writeFileSync('/proc/self/clear_refs', '5'); return true; } catch { return false; }
}

const db = await DuckDBInstance.create(dbfile, { threads: '2' });
const c = await db.connect();

if (mode === 'load') {
    const [tsv, schemaFile] = args;
    const t0 = performance.now();
    await c.run(fs.readFileSync(schemaFile, 'utf8'));
    await c.run(`INSERT INTO ev SELECT * FROM read_csv(${q(tsv)}, delim = '\t', header = false, quote = '',
                   escape = '', auto_detect = false,
                   columns = {user: 'UINTEGER', event: 'VARCHAR', time_ms: 'BIGINT', channel: 'VARCHAR', fund_code: 'VARCHAR'})
                 ORDER BY user, time_ms`);
    await c.run('CHECKPOINT');
    const seconds = (performance.now() - t0) / 1000;
    const s = (await c.runAndReadAll('PRAGMA database_size')).getRowObjects()[0];
    const used = Number(s.used_blocks) * Number(s.block_size);
    c.closeSync();
    db.closeSync();
    const file_bytes = fs.statSync(dbfile).size;
    console.log(JSON.stringify({ seconds: +seconds.toFixed(2), file_bytes, used_bytes: used }));
} else if (mode === 'query') {
    const [sqlFile, outFile, runsArg] = args;
    const sql = fs.readFileSync(sqlFile, 'utf8');
    const runs = Number(runsArg || 3);
    let rows = (await c.runAndReadAll(sql)).getRows(); // warm-up
    const ms = [];
    let peak = 0;
    let canReset = true;
    for (let i = 0; i < runs; i++) {
        canReset = resetHwm() && canReset;
        const t = performance.now();
        rows = (await c.runAndReadAll(sql)).getRows();
        ms.push(+(performance.now() - t).toFixed(1));
        peak = Math.max(peak, hwmKb());
    }
    fs.writeFileSync(outFile, rows.map((r) => r.map(String).join('\t')).join('\n') + '\n');
    console.log(JSON.stringify({ ms, rss_mb: Math.round(peak / 1024), rss_reset: canReset }));
} else {
    console.error('usage: node duck.mjs load DB TSV SCHEMA | query DB SQL OUT RUNS');
    process.exit(2);
}
