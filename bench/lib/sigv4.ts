// The lean SigV4 signer lives in src/common, shared with the backup agent's S3 client.
export * from '../../src/common/sigv4-signer.js';
