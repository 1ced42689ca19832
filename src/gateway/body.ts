// Request bodies. Object bytes stream through a verifier and are never buffered whole:
//   request -> [aws-chunked decoder: chunk + trailer signatures] -> verifier -> consumer (the store)
// The verifier checks, when the body ends and before the consumer learns it has, the signed
// payload hash (x-amz-content-sha256), Content-MD5, the flexible checksum (header or trailer) and
// the declared length; a failure is thrown to the consumer instead of the end, so the store aborts
// the write and nothing becomes visible. Small XML bodies are collected through the same path with a limit.
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { nativeAddon } from '../common/native-addon.js';
import { AwsChunkedDecoder, type ChunkSigning } from './auth/chunked.js';
import { type Checksum, checksumHeader, type ChecksumAlgorithm, CHECKSUM_ALGORITHMS, createChecksum, DIGEST_BYTES, parseChecksumAlgorithm } from './checksums.js';
import { header } from './context.js';
import { S3Error } from './errors.js';
import { MalformedXmlError, MAX_XML_BODY_BYTES, parseXml, type ParsedXml } from './xml.js';

/** How the payload is protected, as decided by authentication. */
export type PayloadPlan =
  | { mode: 'unsigned' }
  | { mode: 'sha256'; expectedHex: string }
  | { mode: 'aws-chunked'; signing?: ChunkSigning };

/** The flexible checksum a request asks for, with its value when sent as a header. */
interface ChecksumExpectation {
  algorithm: ChecksumAlgorithm;
  /** Undefined: the value arrives as a trailing header. */
  value?: string;
}

/** Freed malloc heap the gateway keeps (see tuneHeapForStreamedBodies). */
const FREED_HEAP_KEPT_BYTES = 16 * 1024 * 1024;

/**
 * Heap growth for a process that streams request bodies. Node's HTTP parser hands every body read
 * to JS as a fresh Buffer, so large PUTs allocate hundreds of MB/s of short-lived buffers and V8
 * scavenges every 32 MB of them. Once a gateway has idled (V8's memory reducer shrinks its heap
 * to ~17 MB live), V8's default old-generation headroom came out below the young generation's
 * 16 MB, so the little each scavenge promotes restarted a full mark-compact at once: one every
 * ~70 ms in 64 MiB PUTs, its 4 marking threads a third of the gateway's CPU (perf). Growing the
 * old generation by 3x its live size leaves room: 8 mark-compacts where there were 91.
 * Those buffers come from malloc, and V8 frees them by the thousand in each collection: glibc then
 * handed the heap's freed top back to the kernel and faulted it in again page by page as the next
 * bodies arrived (~17 page faults per object MB in 64 MiB PUTs, nearly all in the parser's copy of
 * a body read). Keeping 16 MiB of freed heap: 1,648 faults in 5 s of them where there were 42,078.
 */
export function tuneHeapForStreamedBodies(): void {
  setFlagsFromString('--heap-growing-percent=200');
  nativeAddon.keepHeapTop(FREED_HEAP_KEPT_BYTES);
}

const pendingContinues = new WeakMap<IncomingMessage, () => void>();

/**
 * `Expect: 100-continue`: the server calls this instead of answering "continue" at once, so the
 * client sends its body only when an operation starts reading it; a request refused by auth or
 * routing is answered without the body ever crossing the network.
 */
export function deferContinue(request: IncomingMessage, sendContinue: () => void): void {
  pendingContinues.set(request, sendContinue);
}

function releaseContinue(request: IncomingMessage): void {
  const sendContinue = pendingContinues.get(request);
  if (!sendContinue) return;
  pendingContinues.delete(request);
  sendContinue();
}

export class RequestBody {
  /** The first verification failure, kept because a consumer may report its own error instead. */
  failure: S3Error | undefined;
  private computed: Record<string, string> = {};
  private consumed = false;

  constructor(private readonly request: IncomingMessage, readonly plan: PayloadPlan) {}

  /** Length of the object bytes the client declared (x-amz-decoded-content-length for aws-chunked). */
  declaredLength(): number | undefined {
    const raw = this.plan.mode === 'aws-chunked'
      ? header(this.request, 'x-amz-decoded-content-length') ?? undefined
      : header(this.request, 'content-length');
    if (raw === undefined) return undefined;
    if (!/^\d+$/.test(raw)) throw new S3Error('InvalidArgument', { message: 'Invalid content length' });
    return Number(raw);
  }

  /** Checksums computed over the body (algorithm -> base64), once the stream has ended. */
  checksums(): Record<string, string> {
    return { ...this.computed };
  }

  /**
   * The object bytes, decoded and verified, as the chunks Node's HTTP parser hands over: no stream
   * stage per chunk between the request and the store (a pipe, a Transform and a Readable's
   * iterator per 64 KiB had cost ~10 % of a 64 MiB PUT's gateway main thread). The verification
   * failure, if any, is thrown by the last next() instead of ending the iteration. `maxBytes`
   * bounds the size (EntityTooLarge beyond).
   */
  chunks(maxBytes: number): AsyncIterableIterator<Buffer> {
    if (this.consumed) throw new Error('request body consumed twice');
    this.consumed = true;
    const declared = this.declaredLength();
    if (declared !== undefined && declared > maxBytes) throw new S3Error('EntityTooLarge', { fields: { ProposedSize: declared, MaxSizeAllowed: maxBytes } });
    const decoder = this.plan.mode === 'aws-chunked' ? new AwsChunkedDecoder(this.plan.signing) : undefined;
    const verifier = new BodyVerifier({
      maxBytes,
      declaredLength: this.plan.mode === 'aws-chunked' ? declared : undefined,
      sha256Hex: this.plan.mode === 'sha256' ? this.plan.expectedHex : undefined,
      contentMd5: contentMd5(this.request),
      checksum: checksumExpectation(this.request),
      trailers: decoder?.trailers,
    });
    releaseContinue(this.request);
    const chunks = new BodyChunks(decoder ?? this.request, verifier, {
      onVerified: (checksums) => { this.computed = checksums; },
      onFailure: (err) => this.noteFailure(err),
    });
    // Not pipeline() for the request itself: destroying the request would destroy the socket
    // before an error response could be sent. On a consumer failure the request is left unread
    // and the error response closes the connection.
    if (decoder) {
      this.request.on('error', (err) => decoder.destroy(err));
      this.request.pipe(decoder);
    }
    // A client that disconnects mid-body must fail the write, not leave it waiting for more bytes.
    this.request.on('close', () => {
      if (!this.request.complete) chunks.fail(new S3Error('IncompleteBody', { message: 'The client closed the connection before sending the whole body.' }));
    });
    return chunks;
  }

  /** The object bytes as a stream, for consumers that pipe (encryption, form parsing). */
  stream(maxBytes: number): Readable {
    return Readable.from(this.chunks(maxBytes), { objectMode: false });
  }

  /** The whole body of a configuration call, at most `limit` bytes. */
  async collect(limit = MAX_XML_BODY_BYTES): Promise<Buffer> {
    const declared = this.declaredLength();
    if (declared !== undefined && declared > limit) throw new S3Error('MaxMessageLengthExceeded');
    const parts: Buffer[] = [];
    try {
      for await (const part of this.chunks(limit)) parts.push(part);
    } catch (err) {
      throw this.failure ?? err;
    }
    return Buffer.concat(parts);
  }

  /** Parse the body as XML; `arrays` names elements that may repeat. */
  async xml(arrays: readonly string[] = []): Promise<ParsedXml> {
    const document = await this.optionalXml(arrays);
    if (!document) throw new S3Error('MalformedXML');
    return document;
  }

  /** Like xml(), but an empty body is undefined rather than an error. */
  async optionalXml(arrays: readonly string[] = []): Promise<ParsedXml | undefined> {
    const body = await this.collect();
    if (body.length === 0) return undefined;
    try {
      return parseXml(body, arrays);
    } catch (err) {
      if (err instanceof MalformedXmlError) throw new S3Error('MalformedXML');
      throw err;
    }
  }

  private noteFailure(err: unknown): void {
    if (this.failure === undefined && err instanceof S3Error) this.failure = err;
  }
}

function contentMd5(request: IncomingMessage): string | undefined {
  const value = header(request, 'content-md5');
  if (value === undefined) return undefined;
  if (Buffer.from(value, 'base64').length !== 16 || !/^[A-Za-z0-9+/]+=*$/.test(value)) throw new S3Error('InvalidDigest');
  return value;
}

/** x-amz-checksum-<alg> header, or x-amz-trailer naming one that follows the body. */
function checksumExpectation(request: IncomingMessage): ChecksumExpectation | undefined {
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const value = header(request, checksumHeader(algorithm));
    if (value === undefined) continue;
    if (Buffer.from(value, 'base64').length !== DIGEST_BYTES[algorithm]) {
      throw new S3Error('InvalidRequest', { message: `Value for ${checksumHeader(algorithm)} header is invalid.` });
    }
    return { algorithm, value };
  }
  const trailer = header(request, 'x-amz-trailer')?.trim().toLowerCase();
  if (trailer?.startsWith('x-amz-checksum-')) {
    const algorithm = parseChecksumAlgorithm(trailer.slice('x-amz-checksum-'.length));
    if (!algorithm) throw new S3Error('InvalidRequest', { message: `The value specified in the x-amz-trailer header is not supported` });
    return { algorithm };
  }
  const sdkAlgorithm = header(request, 'x-amz-sdk-checksum-algorithm');
  if (sdkAlgorithm !== undefined && !parseChecksumAlgorithm(sdkAlgorithm)) {
    throw new S3Error('InvalidRequest', { message: 'Checksum algorithm provided is unsupported.' });
  }
  return undefined;
}

interface VerifierOptions {
  maxBytes: number;
  declaredLength?: number;
  sha256Hex?: string;
  contentMd5?: string;
  checksum?: ChecksumExpectation;
  trailers?: Map<string, string>;
}

/** Hashes the bytes as they pass; at the end checks every digest the client declared. */
class BodyVerifier {
  private size = 0;
  private readonly sha256: Hash | undefined;
  private readonly md5: Hash | undefined;
  private readonly checksum: Checksum | undefined;

  constructor(private readonly options: VerifierOptions) {
    this.sha256 = options.sha256Hex ? createHash('sha256') : undefined;
    this.md5 = options.contentMd5 ? createHash('md5') : undefined;
    this.checksum = options.checksum ? createChecksum(options.checksum.algorithm) : undefined;
  }

  update(data: Buffer): void {
    this.size += data.length;
    if (this.size > this.options.maxBytes) throw new S3Error('EntityTooLarge', { fields: { MaxSizeAllowed: this.options.maxBytes } });
    this.sha256?.update(data);
    this.md5?.update(data);
    this.checksum?.update(data);
  }

  /** Throws the S3 error for the first digest that does not match; else the flexible checksums computed. */
  verify(): Record<string, string> {
    const { declaredLength, sha256Hex, contentMd5, checksum, trailers } = this.options;
    if (declaredLength !== undefined && declaredLength !== this.size) throw new S3Error('IncompleteBody');
    if (this.sha256 && this.sha256.digest('hex') !== sha256Hex!.toLowerCase()) {
      throw new S3Error('XAmzContentSHA256Mismatch', { fields: { ClientComputedContentSHA256: sha256Hex! } });
    }
    if (this.md5 && this.md5.digest('base64') !== contentMd5) throw new S3Error('BadDigest');
    const checksums: Record<string, string> = {};
    if (this.checksum && checksum) {
      const name = checksumHeader(checksum.algorithm);
      const expected = checksum.value ?? trailers?.get(name);
      if (expected === undefined) throw new S3Error('InvalidRequest', { message: `The ${name} trailing header was not sent.` });
      const actual = this.checksum.digest();
      if (actual !== expected) {
        throw new S3Error('BadDigest', { message: `The ${checksum.algorithm} you specified did not match the calculated checksum.` });
      }
      checksums[checksum.algorithm] = actual;
    }
    return checksums;
  }
}

interface BodyEvents {
  onVerified(checksums: Record<string, string>): void;
  onFailure(err: Error): void;
}

/** Chunks read ahead of the consumer before the source is paused. */
const READ_AHEAD_BYTES = 256 * 1024;

/**
 * The chunks of a source stream ('data' events, paused while the consumer is behind), each
 * passed through the verifier; the end is verified before it is reported.
 */
class BodyChunks implements AsyncIterableIterator<Buffer> {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private verified = false;
  private wake: (() => void) | undefined;

  constructor(private readonly source: Readable, private readonly verifier: BodyVerifier, private readonly events: BodyEvents) {
    source.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queuedBytes += chunk.length;
      if (this.queuedBytes >= READ_AHEAD_BYTES) source.pause();
      this.wakeConsumer();
    });
    source.on('end', () => {
      this.ended = true;
      this.wakeConsumer();
    });
    source.on('error', (err) => this.fail(err));
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }

  /** Ends the body with an error (unless it has already been read and verified whole). */
  fail(err: Error): void {
    if (this.failure || this.verified) return;
    this.failure = err;
    this.events.onFailure(err);
    this.wakeConsumer();
  }

  async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.queue.shift();
      if (chunk) return { value: this.take(chunk), done: false };
      if (this.ended) return { value: undefined, done: this.finish() };
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  /** The consumer stopped early: the rest of the body stays unread. */
  async return(): Promise<IteratorResult<Buffer>> {
    this.source.pause();
    this.queue.length = 0;
    return { value: undefined, done: true };
  }

  private take(chunk: Buffer): Buffer {
    this.queuedBytes -= chunk.length;
    if (this.queuedBytes < READ_AHEAD_BYTES && this.source.isPaused()) this.source.resume();
    this.guard(() => this.verifier.update(chunk));
    return chunk;
  }

  private finish(): true {
    if (!this.verified) this.events.onVerified(this.guard(() => this.verifier.verify()));
    this.verified = true;
    return true;
  }

  private guard<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      this.fail(err as Error);
      throw err;
    }
  }

  private wakeConsumer(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
