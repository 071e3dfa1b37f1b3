/**
 * What a benchmark needs to know about another process (Linux /proc): CPU time used, resident
 * memory now and at its peak. Benchmarks compare processes by these, not by wall time alone, since
 * on a small shared machine CPU per item is steadier than throughput.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux x86-64 and arm64

/** User + system CPU seconds the process has used (its threads included, not its children). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the state field.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

function statusField(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(m[1]) * 1024;
}

/** Resident set size now, bytes. */
export const rssBytes = (pid: number): number => statusField(pid, 'VmRSS');

/** Peak resident set size since the process started (VmHWM), bytes. */
export const peakRssBytes = (pid: number): number => statusField(pid, 'VmHWM');

/** Resets the process's VmHWM to its current RSS (clear_refs 5); false when not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Whole-machine CPU seconds (all cores, busy = everything but idle and iowait), for utilisation figures. */
export function machineBusySeconds(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = line.reduce((a, b) => a + b, 0);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

export const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

/** The machine, as every benchmark's report names it: cores, CPU model, memory, Node, platform. */
export function machineDescription(): string {
  let model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch { /* not Linux */ }
  return `${cpus().length} cores, ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

/** The 1, 5 and 15 minute load averages. */
export const loadAverage = (digits = 1): string => loadavg().map((l) => l.toFixed(digits)).join(' ');
