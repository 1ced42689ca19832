// The one place where failures become S3 errors. Operation code throws `S3Error` with a code
// from the catalog below (or lets a StoreError / unexpected exception escape); `toS3Error`
// turns anything into the S3 error a client sees, and `errorXml` renders it.
import { isStoreError, type StoreErrorKind } from '../common/errors.js';
import { buildXml } from './xml.js';

/**
 * S3 error codes this gateway produces: HTTP status and the default message (from the S3 API
 * reference). Operation modules add the codes they need here.
 */
const CATALOG = {
  AccessControlListNotSupported: [400, 'The bucket does not allow ACLs'],
  AccessDenied: [403, 'Access Denied'],
  AccessForbidden: [403, 'CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource\'s CORS spec.'],
  AuthorizationHeaderMalformed: [400, 'The authorization header is malformed'],
  AuthorizationQueryParametersError: [400, 'Error parsing the X-Amz-Credential parameter'],
  BadRequest: [400, 'Bad Request'],
  BadDigest: [400, 'The Content-MD5 you specified did not match what we received.'],
  BucketAlreadyExists: [409, 'The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.'],
  BucketAlreadyOwnedByYou: [409, 'Your previous request to create the named bucket succeeded and you already own it.'],
  BucketNotEmpty: [409, 'The bucket you tried to delete is not empty'],
  EntityTooLarge: [400, 'Your proposed upload exceeds the maximum allowed object size.'],
  EntityTooSmall: [400, 'Your proposed upload is smaller than the minimum allowed object size.'],
  IllegalVersioningConfigurationException: [400, 'The versioning configuration specified in the request is invalid.'],
  IncompleteBody: [400, 'You did not provide the number of bytes specified by the Content-Length HTTP header.'],
  InsufficientStorage: [507, 'Storage backend has reached its capacity; please free space or add nodes.'],
  InternalError: [500, 'We encountered an internal error. Please try again.'],
  InvalidAccessKeyId: [403, 'The AWS Access Key Id you provided does not exist in our records.'],
  InvalidArgument: [400, 'Invalid Argument'],
  InvalidBucketAclWithObjectOwnership: [400, 'Bucket cannot have ACLs set with ObjectOwnership\'s BucketOwnerEnforced setting'],
  InvalidBucketName: [400, 'The specified bucket is not valid.'],
  InvalidBucketState: [409, 'The request is not valid with the current state of the bucket.'],
  InvalidDigest: [400, 'The Content-MD5 you specified is not valid.'],
  InvalidEncryptionAlgorithmError: [400, 'The encryption request that you specified is not valid. The valid value is AES256.'],
  InvalidLocationConstraint: [400, 'The specified location constraint is not valid.'],
  InvalidObjectState: [403, 'The operation is not valid for the current state of the object.'],
  InvalidPolicyDocument: [400, 'The content of the form does not meet the conditions specified in the policy document.'],
  InvalidPart: [400, 'One or more of the specified parts could not be found.'],
  InvalidPartOrder: [400, 'The list of parts was not in ascending order.'],
  InvalidPartNumber: [416, 'The requested partnumber is not satisfiable'],
  InvalidRange: [416, 'The requested range is not satisfiable'],
  InvalidRequest: [400, 'Invalid Request'],
  InvalidStorageClass: [400, 'The storage class you specified is not valid'],
  InvalidTag: [400, 'The tag provided was not a valid tag.'],
  InvalidURI: [400, 'Couldn\'t parse the specified URI.'],
  KeyTooLongError: [400, 'Your key is too long'],
  MalformedACLError: [400, 'The XML you provided was not well-formed or did not validate against our published schema.'],
  MalformedPolicy: [400, 'Policies must be valid JSON and the first byte must be \'{\''],
  MalformedPOSTRequest: [400, 'The body of your POST request is not well-formed multipart/form-data.'],
  MalformedXML: [400, 'The XML you provided was not well-formed or did not validate against our published schema.'],
  MaxMessageLengthExceeded: [400, 'Your request was too big.'],
  MetadataTooLarge: [400, 'Your metadata headers exceed the maximum allowed metadata size.'],
  MethodNotAllowed: [405, 'The specified method is not allowed against this resource.'],
  MissingContentLength: [411, 'You must provide the Content-Length HTTP header.'],
  MissingSecurityHeader: [400, 'Your request was missing a required header.'],
  NoSuchBucket: [404, 'The specified bucket does not exist'],
  NoSuchBucketPolicy: [404, 'The bucket policy does not exist'],
  NoSuchCORSConfiguration: [404, 'The CORS configuration does not exist'],
  NoSuchKey: [404, 'The specified key does not exist.'],
  NoSuchLifecycleConfiguration: [404, 'The lifecycle configuration does not exist'],
  NoSuchObjectLockConfiguration: [404, 'The specified object does not have a ObjectLock configuration'],
  NoSuchPublicAccessBlockConfiguration: [404, 'The public access block configuration was not found'],
  NoSuchTagSet: [404, 'The TagSet does not exist'],
  NoSuchUpload: [404, 'The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.'],
  NoSuchVersion: [404, 'The specified version does not exist.'],
  NoSuchWebsiteConfiguration: [404, 'The specified bucket does not have a website configuration'],
  NotImplemented: [501, 'A header or query you provided implies functionality that is not implemented.'],
  ObjectLockConfigurationNotFoundError: [404, 'Object Lock configuration does not exist for this bucket'],
  OperationAborted: [409, 'A conflicting conditional operation is currently in progress against this resource. Please try again.'],
  OwnershipControlsNotFoundError: [404, 'The bucket ownership controls were not found'],
  PreconditionFailed: [412, 'At least one of the preconditions you specified did not hold.'],
  ReplicationConfigurationNotFoundError: [404, 'The replication configuration was not found'],
  RequestHeaderSectionTooLarge: [400, 'Your request header section exceeds the maximum allowed size.'],
  RequestTimeout: [400, 'Your socket connection to the server was not read from or written to within the timeout period.'],
  RequestTimeTooSkewed: [403, 'The difference between the request time and the server\'s time is too large.'],
  ServerSideEncryptionConfigurationNotFoundError: [404, 'The server side encryption configuration was not found'],
  ServiceUnavailable: [503, 'Service is unable to handle request: too few storage nodes are reachable.'],
  SignatureDoesNotMatch: [403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'],
  SlowDown: [503, 'Please reduce your request rate.'],
  UnexpectedContent: [400, 'This request does not support content'],
  XAmzContentSHA256Mismatch: [400, 'The provided \'x-amz-content-sha256\' header does not match what was computed.'],
} as const satisfies Record<string, readonly [number, string]>;

export type S3ErrorCode = keyof typeof CATALOG;

/** Extra elements of the error document (Key, BucketName, Resource, ...) and response headers. */
export interface S3ErrorDetails {
  message?: string;
  /** Additional XML elements in the error body, in order. */
  fields?: Record<string, string | number>;
  /** Response headers that travel with the error (x-amz-delete-marker, Content-Range, ...). */
  headers?: Record<string, string>;
  /** Logged server-side only (never sent to the client). */
  cause?: unknown;
}

export class S3Error extends Error {
  readonly status: number;
  readonly fields: Record<string, string | number>;
  readonly headers: Record<string, string>;

  constructor(readonly code: S3ErrorCode, details: S3ErrorDetails = {}) {
    const [status, defaultMessage] = CATALOG[code];
    super(details.message ?? defaultMessage, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = `S3Error(${code})`;
    this.status = status;
    this.fields = details.fields ?? {};
    this.headers = details.headers ?? {};
  }
}

const STORE_KINDS: Record<StoreErrorKind, S3ErrorCode> = {
  NotFound: 'NoSuchKey',
  Corrupt: 'InternalError',
  DiskFull: 'InsufficientStorage',
  Unavailable: 'ServiceUnavailable',
  QuorumFailed: 'SlowDown',
  Conflict: 'OperationAborted',
  Unauthenticated: 'InternalError', // the gateway's cluster secret is wrong: our fault, not the client's
  InvalidArgument: 'InvalidArgument',
  Internal: 'InternalError',
};

/** Whether the failure is ours (to be logged as an error) rather than the client's. */
export function isServerFault(err: S3Error): boolean {
  return err.status >= 500;
}

/** Any thrown value as the S3 error the client receives. Unexpected errors become InternalError. */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  if (isStoreError(err)) {
    const code = STORE_KINDS[err.kind];
    // Only client-facing kinds pass their message on; internal details stay in the log.
    const message = err.kind === 'InvalidArgument' ? err.message : undefined;
    return new S3Error(code, { message, cause: err });
  }
  return new S3Error('InternalError', { cause: err });
}

export function errorXml(err: S3Error, resource: string, requestId: string, hostId: string): string {
  return buildXml('Error', {
    Code: err.code,
    Message: err.message,
    ...err.fields,
    Resource: resource,
    RequestId: requestId,
    HostId: hostId,
  }, { namespace: false });
}
