/**
 * A real Apache Kafka broker for the end-to-end tests (DESIGN.md, "Real components in tests").
 *
 * - `ensureKafka(version)` fetches the broker's jars from Maven Central with `mvn
 *   dependency:copy-dependencies` of test/kafka/pom.xml, once per version, into a cache outside the
 *   repo (`${XDG_CACHE_HOME:-~/.cache}/kube-correlate/kafka-<version>/libs`).
 * - `startKafka({ version })` formats a fresh KRaft store in a temp dir and starts a single combined
 *   broker+controller on free loopback ports, and resolves once the broker answers Kafka requests
 *   and lists itself as an alive broker (a tiny Kafka-protocol client below, Node built-ins only).
 *
 * Nothing here mocks Kafka. See test/kafka/README.md for the settings and measured timings.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, stopTracked, tail, track, untrack, watchdogLauncher, withLock, type Tracked } from './supervise.js';

export const KAFKA_VERSIONS = ['3.9.1', '4.2.0'] as const;
export type KafkaVersion = (typeof KAFKA_VERSIONS)[number];

/** The pom whose dependencies are the broker's classpath. */
export const KAFKA_POM = fileURLToPath(new URL('../../kafka/pom.xml', import.meta.url));

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const DOWNLOAD_TIMEOUT_MS = 20 * 60_000;
const LOCK_WAIT_MS = 25 * 60_000;

const majorOf = (version: string): number => Number(version.split('.')[0]);

// ---------------------------------------------------------------------------------------------
// Tools and the jar cache

/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/kafka-<version>`; `libs/` and the stamp live here. */
export function kafkaCacheDir(version: string): string {
  const xdg = process.env['XDG_CACHE_HOME'];
  const root = xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(root, 'kube-correlate', `kafka-${version}`);
}

/** `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH. */
function javaBin(): string {
  const home = process.env['JAVA_HOME'];
  return home ? join(home, 'bin', 'java') : 'java';
}

/** Throws an Error naming the missing tool and how to install it. Never skips. */
function requireJava(version: string): void {
  const java = javaBin();
  const need = majorOf(version) >= 4 ? 17 : 11;
  const r = spawnSync(java, ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `Kafka ${version} tests need a Java ${need}+ runtime, but \`${java}\` could not be run` +
      `${r.error ? ` (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` : ''}. ` +
      `Install one (Debian/Ubuntu: \`apt-get install -y openjdk-17-jre-headless\`; macOS: \`brew install openjdk@17\`) ` +
      'and put `java` on PATH or set JAVA_HOME.',
    );
  }
  const m = /version "(?:1\.)?(\d+)/.exec(`${r.stderr}${r.stdout}`);
  const found = m ? Number(m[1]) : NaN;
  if (!(found >= need)) {
    throw new Error(`Kafka ${version} needs Java ${need}+, but \`${java} -version\` reports ${m ? found : 'an unknown version'}. Install Java 17 (Debian/Ubuntu: \`apt-get install -y openjdk-17-jre-headless\`) and put it on PATH or set JAVA_HOME.`);
  }
}

function requireMaven(version: string): void {
  const r = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `Kafka ${version} is not in the cache (${kafkaCacheDir(version)}) and downloading it needs Apache Maven, but \`mvn\` could not be run` +
      `${r.error ? ` (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` : ''}. ` +
      'Install Maven 3.6+ (Debian/Ubuntu: `apt-get install -y maven`; macOS: `brew install maven`) and make sure Maven Central is reachable.',
    );
  }
}

/** The mvn arguments that copy the jars of `version` into `outDir` (also documented in test/kafka/README.md). */
export function kafkaMavenArgs(version: string, outDir: string): string[] {
  return [
    '-q', '-B', '-Dstyle.color=never', '-f', KAFKA_POM, `-Dkafka.version=${version}`,
    // Kafka 4.x logs through log4j2, 3.x through reload4j: the pom's profiles pick the slf4j binding.
    ...(majorOf(version) >= 4 ? ['-Dkafka.logging=log4j2'] : []),
    'dependency:copy-dependencies', `-DoutputDirectory=${outDir}`,
  ];
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const timer = setTimeout(() => { output += `\n[harness] killed after ${timeoutMs} ms\n`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}


/**
 * The directory of jars of Kafka `version`, downloaded with Maven on first use. The stamp file is
 * written last (after the jars were renamed into place), so an interrupted download is redone;
 * a lock keeps concurrent test processes from downloading into the same place.
 */
export async function ensureKafka(version: string): Promise<string> {
  requireJava(version);
  const base = kafkaCacheDir(version);
  const libs = join(base, 'libs');
  const stamp = join(base, 'complete');
  if (existsSync(stamp) && existsSync(libs)) return libs;
  requireMaven(version);
  mkdirSync(base, { recursive: true });
  return withLock(join(base, 'lock'), `the download of Kafka ${version}`, LOCK_WAIT_MS, async () => {
    if (existsSync(stamp) && existsSync(libs)) return libs; // another process finished it meanwhile
    rmSync(libs, { recursive: true, force: true });
    for (const e of readdirSync(base)) if (e.startsWith('libs.tmp-')) rmSync(join(base, e), { recursive: true, force: true });
    const tmp = join(base, `libs.tmp-${process.pid}`);
    const args = kafkaMavenArgs(version, tmp);
    const started = Date.now();
    const { code, output } = await run('mvn', args, DOWNLOAD_TIMEOUT_MS);
    const jars = existsSync(tmp) ? readdirSync(tmp).filter((f) => f.endsWith('.jar')) : [];
    if (code !== 0 || !jars.includes(`kafka_2.13-${version}.jar`)) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`downloading Kafka ${version} failed (mvn ${args.join(' ')} exited ${code}):\n${output.slice(-4000)}`);
    }
    renameSync(tmp, libs);
    writeFileSync(`${stamp}.tmp`, `${JSON.stringify({ version, jars: jars.length, downloadMs: Date.now() - started, at: new Date().toISOString(), command: ['mvn', ...args] }, null, 2)}\n`);
    renameSync(`${stamp}.tmp`, stamp);
    return libs;
  });
}

// ---------------------------------------------------------------------------------------------
// A minimal Kafka protocol client: ApiVersions v0 and Metadata v1, over node:net

function frame(apiKey: number, apiVersion: number, correlationId: number, body: Buffer): Buffer {
  const clientId = Buffer.from('kc-harness-probe');
  const header = Buffer.alloc(10 + clientId.length);
  header.writeInt16BE(apiKey, 0);
  header.writeInt16BE(apiVersion, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(clientId.length, 8);
  clientId.copy(header, 10);
  const size = Buffer.alloc(4);
  size.writeInt32BE(header.length + body.length, 0);
  return Buffer.concat([size, header, body]);
}

/** Sends one request (request header v1) and returns the response after its correlation id. */
function kafkaRequest(broker: string, apiKey: number, apiVersion: number, body: Buffer, timeoutMs: number): Promise<Buffer> {
  const i = broker.lastIndexOf(':');
  const host = broker.slice(0, i);
  const port = Number(broker.slice(i + 1));
  const correlationId = randomBytes(4).readInt32BE(0);
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let buf = Buffer.alloc(0);
    const fail = (e: Error) => { sock.destroy(); reject(e); };
    sock.setTimeout(timeoutMs, () => fail(new Error(`no answer from ${broker} within ${timeoutMs} ms`)));
    sock.on('error', fail);
    sock.on('connect', () => sock.write(frame(apiKey, apiVersion, correlationId, body)));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4) return;
      const size = buf.readInt32BE(0);
      if (size < 4 || size > 64 * 1024 * 1024) return fail(new Error(`bad response size ${size} from ${broker}`));
      if (buf.length < 4 + size) return;
      sock.destroy();
      const got = buf.readInt32BE(4);
      if (got !== correlationId) return reject(new Error(`correlation id ${got} from ${broker}, expected ${correlationId}`));
      resolve(buf.subarray(8, 4 + size));
    });
    sock.on('close', () => reject(new Error(`${broker} closed the connection without a complete answer`)));
  });
}

class Reader {
  private o = 0;
  constructor(private readonly b: Buffer) {}
  i16(): number { const v = this.b.readInt16BE(this.o); this.o += 2; return v; }
  i32(): number { const v = this.b.readInt32BE(this.o); this.o += 4; return v; }
  str(): string | null {
    const n = this.i16();
    if (n < 0) return null;
    const s = this.b.toString('utf8', this.o, this.o + n);
    this.o += n;
    return s;
  }
}

export interface ApiVersionRange { min: number; max: number }

/** ApiVersions v0: the API keys the broker supports, with their version ranges. */
export async function kafkaApiVersions(broker: string, timeoutMs = 2000): Promise<Map<number, ApiVersionRange>> {
  const r = new Reader(await kafkaRequest(broker, 18, 0, Buffer.alloc(0), timeoutMs));
  const error = r.i16();
  if (error !== 0) throw new Error(`ApiVersions v0 from ${broker}: error code ${error}`);
  const apis = new Map<number, ApiVersionRange>();
  for (let n = r.i32(); n > 0; n--) {
    const key = r.i16();
    apis.set(key, { min: r.i16(), max: r.i16() });
  }
  return apis;
}

export interface KafkaMetadata { brokers: { nodeId: number; host: string; port: number }[]; controllerId: number }

/** Metadata v1 for no topics: the alive (unfenced) brokers and the controller id. */
export async function kafkaMetadata(broker: string, timeoutMs = 2000): Promise<KafkaMetadata> {
  const body = Buffer.alloc(4); // topics: empty array (v1+: no topics; null would mean all)
  const r = new Reader(await kafkaRequest(broker, 3, 1, body, timeoutMs));
  const brokers: KafkaMetadata['brokers'] = [];
  for (let n = r.i32(); n > 0; n--) {
    const nodeId = r.i32();
    const host = r.str() ?? '';
    const port = r.i32();
    r.str(); // rack
    brokers.push({ nodeId, host, port });
  }
  return { brokers, controllerId: r.i32() };
}

/**
 * Resolves once `broker` answers ApiVersions and its Metadata lists the broker at that address,
 * i.e. it is unfenced and can take produce and CreateTopics requests. Rejects at the deadline or
 * as soon as `failed()` returns a reason (for example: the process exited).
 */
export async function waitForKafka(broker: string, timeoutMs = READY_TIMEOUT_MS, failed: () => string | undefined = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const [host, port] = [broker.slice(0, broker.lastIndexOf(':')), Number(broker.slice(broker.lastIndexOf(':') + 1))];
  let last = 'no attempt yet';
  for (;;) {
    const why = failed();
    if (why) throw new Error(why);
    try {
      const apis = await kafkaApiVersions(broker);
      if (!apis.has(0) || !apis.has(3)) last = 'ApiVersions lacks Produce/Metadata';
      else {
        const md = await kafkaMetadata(broker);
        if (md.brokers.some((b) => b.host === host && b.port === port)) return;
        last = `Metadata lists brokers ${JSON.stringify(md.brokers)}, not ${broker} yet`;
      }
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`Kafka at ${broker} not ready after ${timeoutMs} ms (last: ${last})`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------
// The broker process

export interface KafkaBroker {
  version: string;
  /** "127.0.0.1:PORT", the PLAINTEXT listener (bootstrap servers for clients). */
  brokers: string;
  port: number;
  /** The port of each extra listener (StartKafkaOptions.listeners), by name. */
  listenerPorts: Record<string, number>;
  controllerPort: number;
  clusterId: string;
  /** The temp dir with server.properties, the logging config, data/ and the logs; removed by stop(). */
  dir: string;
  /** The broker's log4j log (server.log in `dir`); the JVM's own stdout/stderr go to stdout.log beside it. */
  logPath: string;
  /** Milliseconds from spawning `java` to the broker being ready, for the latest start. */
  readyMs: number;
  /** True while the broker process is alive. */
  readonly running: boolean;
  /** The broker JVM's pid while it runs (for CPU and memory figures in benchmarks). */
  readonly pid: number | undefined;
  /** stopBroker() then startBroker(): same ports, same data, for broker-outage tests. */
  restart(): Promise<void>;
  /** SIGTERM (controlled shutdown), SIGKILL after 10 s; keeps the data. No-op when not running. */
  stopBroker(): Promise<void>;
  /** Starts the stopped broker again on the same ports and data; resolves when it is ready. */
  startBroker(): Promise<void>;
  /** Stops the broker and deletes its temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** A client listener besides PLAINTEXT (which the harness's readiness probe and the broker itself use). */
export interface ExtraListener {
  /** Listener name, upper case, e.g. SECURE; its settings go in `config` as listener.name.<lower case name>.*. */
  name: string;
  protocol: 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL';
  /** Advertise this port instead of the listener's own: clients then connect through whatever listens there (a proxy). */
  advertisedPort?: number;
}

export interface StartKafkaOptions {
  version: string;
  /** `num.partitions`: the partition count of topics created without one. Default 1. */
  partitions?: number;
  /** Extra server.properties lines, overriding the defaults below. */
  config?: Record<string, string | number | boolean>;
  /** More client listeners on free loopback ports; their ports are in `KafkaBroker.listenerPorts`. */
  listeners?: ExtraListener[];
  /** More arguments to `StorageTool format`, e.g. `--add-scram 'SCRAM-SHA-256=[name=alice,password=...]'`. */
  formatArgs?: string[];
}

/** A KRaft cluster id: 16 random bytes as unpadded base64url (22 chars), not starting with '-' (like Kafka's Uuid.randomUuid). */
export function kafkaClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-') && !id.startsWith('_')) return id;
  }
}

function serverProperties(o: { version: string; dir: string; port: number; controllerPort: number; partitions: number; extra: Record<string, string | number | boolean>; listeners: Array<ExtraListener & { port: number }> }): string {
  const more = (f: (l: ExtraListener & { port: number }) => string) => o.listeners.map((l) => `,${f(l)}`).join('');
  const props: Record<string, string | number | boolean> = {
    // One process that is both the KRaft controller (a static single-voter quorum) and the broker.
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${o.controllerPort}`,
    'listeners': `PLAINTEXT://127.0.0.1:${o.port},CONTROLLER://127.0.0.1:${o.controllerPort}${more((l) => `${l.name}://127.0.0.1:${l.port}`)}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${o.port}${more((l) => `${l.name}://127.0.0.1:${l.advertisedPort ?? l.port}`)}`,
    'listener.security.protocol.map': `PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${more((l) => `${l.name}:${l.protocol}`)}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': join(o.dir, 'data'),
    // The application creates its topics (with their documented partition counts); a typo must fail.
    'auto.create.topics.enable': false,
    'num.partitions': o.partitions,
    // A single broker: every replication factor and ISR minimum is 1.
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'offsets.topic.replication.factor': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    // Small internal topics: created on the first group join / transaction, faster with fewer partitions.
    'offsets.topic.num.partitions': 4,
    'transaction.state.log.num.partitions': 4,
    // Consumer groups form at once instead of waiting 3 s for more members.
    'group.initial.rebalance.delay.ms': 0,
    // The log cleaner (compacted topics such as __consumer_offsets) would take a 128 MiB buffer.
    'log.cleaner.dedupe.buffer.size': 16 * 1024 * 1024,
    'num.network.threads': 2,
    'num.io.threads': 4,
    ...(majorOf(o.version) >= 4
      ? { 'share.coordinator.state.topic.replication.factor': 1, 'share.coordinator.state.topic.min.isr': 1 }
      : {}),
    ...o.extra,
  };
  return `${Object.entries(props).map(([k, v]) => `${k}=${String(v)}`).join('\n')}\n`;
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Writes the logging config for the version's backend; returns the JVM system property that selects it. */
function writeLogging(version: string, dir: string, logFile: string, name: string): string {
  if (majorOf(version) >= 4) {
    const path = join(dir, `${name}-log4j2.xml`);
    writeFileSync(path, `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <File name="file" fileName="${xmlEscape(logFile)}" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Root level="info"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
`);
    return `-Dlog4j2.configurationFile=${path}`;
  }
  const path = join(dir, `${name}-log4j.properties`);
  writeFileSync(path, [
    'log4j.rootLogger=INFO, file',
    'log4j.appender.file=org.apache.log4j.FileAppender',
    `log4j.appender.file.File=${logFile.replace(/\\/g, '\\\\')}`,
    'log4j.appender.file.Append=true',
    'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
    'log4j.logger.kafka.request.logger=WARN',
    '',
  ].join('\n'));
  return `-Dlog4j.configuration=file:${path}`;
}


/** Formats a fresh KRaft store and starts a broker on free loopback ports; resolves when it is ready. */
export async function startKafka(opts: StartKafkaOptions): Promise<KafkaBroker> {
  const { version } = opts;
  const libs = await ensureKafka(version);
  const classpath = `${libs}/*`;
  const dir = mkdtempSync(join(tmpdir(), `kc-kafka-${version}-`));
  const tracked: Tracked = { child: undefined, dir };
  track(tracked);

  const logPath = join(dir, 'server.log');
  const stdoutPath = join(dir, 'stdout.log');
  const propsPath = join(dir, 'server.properties');
  const clusterId = kafkaClusterId();
  const java = javaBin();
  let port = 0;
  let controllerPort = 0;
  let extra: Array<ExtraListener & { port: number }> = [];
  let exitInfo: string | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;
  let readyMs = 0;

  const writeProps = async () => {
    const taken = new Set<number>();
    port = await freePort(taken);
    taken.add(port);
    controllerPort = await freePort(taken);
    taken.add(controllerPort);
    extra = [];
    for (const l of opts.listeners ?? []) {
      if (l.advertisedPort !== undefined) taken.add(l.advertisedPort);
      const p = await freePort(taken);
      taken.add(p);
      extra.push({ ...l, port: p });
    }
    writeFileSync(propsPath, serverProperties({ version, dir, port, controllerPort, partitions: opts.partitions ?? 1, extra: opts.config ?? {}, listeners: extra }));
  };

  const failWith = (what: string, cause: string): Error => new Error(
    `${what} (Kafka ${version}, ${dir}): ${cause}\n--- ${logPath} (tail) ---\n${tail(logPath)}\n--- ${stdoutPath} (tail) ---\n${tail(stdoutPath, 20)}`,
  );

  const spawnBroker = async (): Promise<void> => {
    const jvmLogging = writeLogging(version, dir, logPath, 'server');
    const out = openSync(stdoutPath, 'a');
    const started = Date.now();
    const child = spawn('/bin/sh', ['-c', watchdogLauncher('KC_KAFKA_DIR'), 'kafka-broker',
      java, '-Xms128m', '-Xmx512m', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-Djava.awt.headless=true',
      jvmLogging, `-Dkafka.logs.dir=${dir}`, '-cp', classpath, 'kafka.Kafka', propsPath,
    ], { cwd: dir, detached: true, stdio: ['pipe', out, out], env: { ...process.env, KC_KAFKA_DIR: dir } });
    closeSync(out);
    tracked.child = child;
    exitInfo = undefined;
    exited = new Promise<void>((resolve) => child.on('exit', (code, signal) => {
      exitInfo = `the broker process exited (${signal ?? `code ${code}`})`;
      resolve();
    }));
    child.on('error', (e) => { exitInfo = `could not start the broker: ${e.message}`; });
    // Neither the child nor the watchdog pipe keeps the test process alive; the exit hook kills them.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    child.stdin?.on('error', () => { /* the group is gone */ });
    try {
      await waitForKafka(`127.0.0.1:${port}`, READY_TIMEOUT_MS, () => exitInfo);
    } catch (e) {
      await stopProcess();
      throw failWith('the Kafka broker did not become ready', (e as Error).message);
    }
    readyMs = Date.now() - started;
  };

  const stopProcess = (): Promise<void> => stopTracked(tracked, exited, STOP_GRACE_MS);

  try {
    // Format the store. A static quorum (controller.quorum.voters) formats the same way on 3.9 and
    // 4.x: no --standalone / --initial-controllers (which are for dynamic quorums, and refused
    // together with controller.quorum.voters).
    await writeProps();
    const fmtLogging = writeLogging(version, dir, join(dir, 'format.log'), 'format');
    const fmt = await run(java, [fmtLogging, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', propsPath, ...(opts.formatArgs ?? [])], 60_000);
    if (fmt.code !== 0) throw failWith('formatting the KRaft store failed', `StorageTool exited ${fmt.code}:\n${fmt.output}`);
    // Start; if a port we picked was taken in the meantime, pick new ones (the store does not record them).
    for (let attempt = 1; ; attempt++) {
      try {
        await spawnBroker();
        break;
      } catch (e) {
        const bind = /Address already in use|BindException/.test(tail(logPath, 200) + tail(stdoutPath, 50));
        if (!bind || attempt >= 3) throw e;
        await writeProps();
      }
    }
  } catch (e) {
    await stopProcess();
    untrack(tracked);
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    throw e;
  }

  const broker: KafkaBroker = {
    version,
    get brokers() { return `127.0.0.1:${port}`; },
    get port() { return port; },
    get listenerPorts() { return Object.fromEntries(extra.map((l) => [l.name, l.port])); },
    get controllerPort() { return controllerPort; },
    clusterId,
    dir,
    logPath,
    get readyMs() { return readyMs; },
    get running() { return tracked.child !== undefined && exitInfo === undefined; },
    get pid() { return exitInfo === undefined ? tracked.child?.pid : undefined; },
    async stopBroker() { await stopProcess(); },
    async startBroker() {
      if (stopped) throw new Error(`Kafka ${version} broker in ${dir} was stopped for good`);
      if (broker.running) return;
      await stopProcess(); // reap a crashed process's watchdog
      await spawnBroker();
    },
    async restart() {
      await broker.stopBroker();
      await broker.startBroker();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess();
      untrack(tracked);
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    },
  };
  return broker;
}

/**
 * `KC_KAFKA_CLIENT` for the shipped configs (collector-config/kafka-*.yaml read it): the test
 * file's choice, unless the environment sets KC_KAFKA_CLIENT, to run a file on the other library.
 */
export function kafkaClientEnv(fileDefault: 'platformatic' | 'kafkajs' = 'platformatic'): { KC_KAFKA_CLIENT: 'platformatic' | 'kafkajs' } {
  const v = process.env['KC_KAFKA_CLIENT'];
  if (v && v !== 'platformatic' && v !== 'kafkajs') throw new Error(`KC_KAFKA_CLIENT=${v}: expected platformatic or kafkajs`);
  return { KC_KAFKA_CLIENT: (v as 'platformatic' | 'kafkajs' | undefined) || fileDefault };
}
