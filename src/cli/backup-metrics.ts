// `tessera backup --metrics-file PATH`: the outcome of the last backup of a disk in Prometheus
// text format, for node_exporter's textfile collector (a backup is a short-lived process that no
// scraper would catch). Written to a temp file and renamed, so a scrape never reads half a file.
import { rename, writeFile } from 'node:fs/promises';
import client from 'prom-client';

export interface BackupOutcome {
  bucket: string;
  disk: string;
  timeMs: number;
  durationMs: number;
  bytesRead: number;
  bytesChanged: number;
  bytesUploaded: number;
  incremental: boolean;
}

export async function writeBackupMetrics(path: string, outcome: BackupOutcome): Promise<void> {
  const registry = new client.Registry();
  const labels = { bucket: outcome.bucket, disk: outcome.disk };
  const set = (name: string, help: string, value: number) =>
    new client.Gauge({ name, help, labelNames: ['bucket', 'disk'], registers: [registry] }).set(labels, value);
  set('tessera_backup_last_success_timestamp_seconds', 'When the last successful backup of the disk was taken', outcome.timeMs / 1000);
  set('tessera_backup_last_duration_seconds', 'How long the last backup of the disk took', outcome.durationMs / 1000);
  set('tessera_backup_last_read_bytes', 'Bytes the last backup read from the disk', outcome.bytesRead);
  set('tessera_backup_last_changed_bytes', 'Bytes that had changed since the previous snapshot', outcome.bytesChanged);
  set('tessera_backup_last_uploaded_bytes', 'Bytes the last backup uploaded after deduplication and compression', outcome.bytesUploaded);
  set('tessera_backup_last_incremental', '1 when the last backup read only changed extents (dirty bitmap)', outcome.incremental ? 1 : 0);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, await registry.metrics());
  await rename(temp, path);
}
