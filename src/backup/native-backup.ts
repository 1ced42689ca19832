// The backup agent's native addon (native/backup/, built by `npm ci` through binding.gyp), loaded
// at first use.
import { loadAddon } from '../common/native-addon.js';

declare const nativeEncoder: unique symbol;
/** An encoder's native state (per lane: an AES-256-GCM context, the HMAC key's hashed pads, a zstd context). */
export type NativeEncoder = { [nativeEncoder]: true };
declare const nativeDecoder: unique symbol;
/** A decoder's native state (one AES-256-GCM context, one zstd context). */
export type NativeDecoder = { [nativeDecoder]: true };

/** Why a blob failed to decode (native/backup/decode.c). */
export interface DecodeFailure {
  index: number;
  reason: 'short' | 'authentication' | 'decompression' | 'length';
}

export interface BackupAddon {
  /**
   * An encoder sealing under `encKey` (null: blobs stored unsealed), naming chunks by HMAC-SHA256
   * under `macKey` (null: SHA-256), binding ids to seals if `bindIds`, compressing at zstd
   * `level`, running up to `lanes` batches at a time (more wait on libuv's pool for a free lane).
   */
  encoder(encKey: Uint8Array | null, macKey: Uint8Array | null, bindIds: boolean, level: number, lanes: number): NativeEncoder;
  /**
   * A batch of chunks named and/or blobs encoded. `chunkSize` > 0 (`pieces` null): the id of
   * each chunkSize piece of `data` into `ids`, back to back (all-zero pieces get the all-zero id),
   * and with `out` and `stored` the stored forms of the pieces that are not all zero ((0, 0) in
   * `stored` for the others). `chunkSize` 0: the stored forms of `pieces` (offset, length each;
   * ids back to back in `ids`). Stored forms go back to back into `out`, each kept compressed if
   * that saves 1/32 or more, with (stored length, compressed 1/0) per blob in `stored`. Returns
   * the bytes written; with `done`, runs on libuv's thread pool and calls it instead (the arrays
   * must be left alone until then).
   */
  encodeBatch(encoder: NativeEncoder, data: Uint8Array, chunkSize: number, ids: Uint8Array, pieces: Float64Array | null, out: Uint8Array | null, stored: Float64Array | null): number;
  encodeBatch(encoder: NativeEncoder, data: Uint8Array, chunkSize: number, ids: Uint8Array, pieces: Float64Array | null, out: Uint8Array | null, stored: Float64Array | null, done: (error: Error | null, written: number) => void): void;
  /** A decoder for blobs sealed under `key` (null: stored unsealed); `bindIds`: seals bind blob ids. */
  decoder(key: Uint8Array | null, bindIds: boolean): NativeDecoder;
  /**
   * Opens and decompresses the blobs of `data` (offset, length, rawLength, compressed per blob in
   * `blobs`; ids back to back in `ids`) into `out`, back to back; the first failure, or null.
   */
  decodeBlobs(decoder: NativeDecoder, data: Uint8Array, blobs: Float64Array, ids: Uint8Array, out: Uint8Array): DecodeFailure | null;
  /** Asks for transparent huge pages under the whole 2 MiB pages of `bytes`; the bytes that covers. */
  adviseHugePages(bytes: Uint8Array): number;
}

let addon: BackupAddon | undefined;

export function backupAddon(): BackupAddon {
  return (addon ??= loadAddon<BackupAddon>('tessera_backup', ['encoder', 'encodeBatch', 'decoder', 'decodeBlobs', 'adviseHugePages']));
}
