// The backup agent's native addon (native/backup/, built by `npm ci` through binding.gyp), loaded
// at first use: a backup that only encodes does without it.
import { loadAddon } from '../common/native-addon.js';

declare const nativeDecoder: unique symbol;
/** A decoder's native state (one AES-256-GCM context, one zstd context). */
export type NativeDecoder = { [nativeDecoder]: true };

/** Why a blob failed to decode (native/backup/decode.c). */
export interface DecodeFailure {
  index: number;
  reason: 'short' | 'authentication' | 'decompression' | 'length';
}

export interface BackupAddon {
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
  return (addon ??= loadAddon<BackupAddon>('tessera_backup', ['decoder', 'decodeBlobs', 'adviseHugePages']));
}
