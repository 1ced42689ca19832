// Decoder for `Content-Encoding: aws-chunked` bodies: `<hex size>[;chunk-signature=<sig>]\r\n`
// `<data>\r\n` ... a zero-size chunk, then optional trailing headers (`name:value\r\n` lines, e.g.
// x-amz-checksum-crc32 and x-amz-trailer-signature) and a blank line. Emits only the data bytes;
// with signing it verifies each chunk's signature (chained from the seed signature) and the
// trailer signature. Data bytes pass through as slices; only the short framing lines are scanned.
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from '../errors.js';
import { chunkStringToSign, sha256Hex, signaturesEqual, signHex, trailerStringToSign } from './sigv4.js';

export interface ChunkSigning {
  key: Buffer;
  amzDate: string;
  scope: string;
  /** The request's own signature: the first chunk chains from it. */
  seedSignature: string;
  accessKeyId: string;
}

const MAX_LINE_BYTES = 4096;

type State = 'size-line' | 'data' | 'data-end' | 'trailer' | 'done';

export class AwsChunkedDecoder extends Transform {
  /** Trailing headers (lower-case names), complete once the stream has ended. */
  readonly trailers = new Map<string, string>();
  private state: State = 'size-line';
  private pending = Buffer.alloc(0);
  private remaining = 0;
  private chunkSignature = '';
  private previousSignature: string;
  private chunkHash: Hash | undefined;

  constructor(private readonly signing: ChunkSigning | undefined) {
    super();
    this.previousSignature = signing?.seedSignature ?? '';
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.consume(data);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    const unterminatedTrailer = this.state === 'trailer' && this.pending.length === 0;
    if (this.state !== 'done' && !unterminatedTrailer) {
      callback(new S3Error('IncompleteBody', { message: 'The aws-chunked body ended before its final chunk.' }));
      return;
    }
    try {
      if (this.state === 'trailer') this.finishTrailer();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  private consume(data: Buffer): void {
    let input = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    this.pending = Buffer.alloc(0);
    while (input.length > 0 && this.state !== 'done') {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, input.length);
        const slice = input.subarray(0, take);
        this.chunkHash?.update(slice);
        this.push(slice);
        this.remaining -= take;
        input = input.subarray(take);
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      const eol = input.indexOf('\r\n');
      if (eol < 0) {
        if (input.length > MAX_LINE_BYTES) throw malformed('framing line too long');
        this.pending = Buffer.from(input);
        return;
      }
      const line = input.subarray(0, eol).toString('latin1');
      input = input.subarray(eol + 2);
      this.onLine(line);
    }
    if (input.length > 0) throw malformed('data after the final chunk');
  }

  private onLine(line: string): void {
    switch (this.state) {
      case 'size-line': return this.startChunk(line);
      case 'data-end':
        if (line !== '') throw malformed('chunk data longer than its declared size');
        this.endChunk();
        this.state = 'size-line';
        return;
      case 'trailer':
        if (line === '') return this.finishTrailer();
        return this.addTrailer(line);
      default:
        throw malformed('unexpected framing line');
    }
  }

  private startChunk(line: string): void {
    const [sizeHex, ...extensions] = line.split(';');
    if (!sizeHex || !/^[0-9a-fA-F]{1,16}$/.test(sizeHex)) throw malformed('bad chunk size');
    const size = parseInt(sizeHex, 16);
    const signature = extensions.find((e) => e.startsWith('chunk-signature='))?.slice('chunk-signature='.length);
    if (this.signing && !signature) throw new S3Error('SignatureDoesNotMatch', { message: 'A chunk is missing its chunk-signature.' });
    this.chunkSignature = signature ?? '';
    this.chunkHash = this.signing ? createHash('sha256') : undefined;
    this.remaining = size;
    if (size > 0) {
      this.state = 'data';
      return;
    }
    // The zero-size chunk closes the data; its signature covers the empty payload.
    this.endChunk();
    this.state = 'trailer';
  }

  private endChunk(): void {
    if (!this.signing) return;
    const { key, amzDate, scope, accessKeyId } = this.signing;
    const expected = signHex(key, chunkStringToSign(amzDate, scope, this.previousSignature, this.chunkHash!.digest('hex')));
    if (!signaturesEqual(expected, this.chunkSignature)) {
      throw new S3Error('SignatureDoesNotMatch', { message: 'The chunk signature does not match.', fields: { AWSAccessKeyId: accessKeyId } });
    }
    this.previousSignature = this.chunkSignature;
  }

  private addTrailer(line: string): void {
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed('bad trailing header');
    if (this.trailers.size >= 16) throw malformed('too many trailing headers');
    this.trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }

  private finishTrailer(): void {
    this.state = 'done';
    if (!this.signing) return;
    const given = this.trailers.get('x-amz-trailer-signature');
    if (given === undefined) {
      // Signed streams without a trailer end with the zero chunk; nothing more to check.
      if (this.trailers.size === 0) return;
      throw new S3Error('SignatureDoesNotMatch', { message: 'The trailing headers are not signed.' });
    }
    const canonical = [...this.trailers].filter(([name]) => name !== 'x-amz-trailer-signature').map(([name, value]) => `${name}:${value}\n`).join('');
    const { key, amzDate, scope, accessKeyId } = this.signing;
    const expected = signHex(key, trailerStringToSign(amzDate, scope, this.previousSignature, sha256Hex(canonical)));
    if (!signaturesEqual(expected, given)) {
      throw new S3Error('SignatureDoesNotMatch', { message: 'The trailer signature does not match.', fields: { AWSAccessKeyId: accessKeyId } });
    }
  }
}

function malformed(detail: string): S3Error {
  return new S3Error('IncompleteBody', { message: `Malformed aws-chunked body: ${detail}.` });
}
