/**
 * Builds the ArtifactStore a worker uses from its configured root URI:
 * `file:///abs/dir` -> LocalArtifactStore, `s3://bucket/prefix` -> S3ArtifactStore.
 */
import type { ArtifactStore } from '../ports/artifact-store';
import { ConfigError } from '../ports/errors';
import { LocalArtifactStore } from './local-artifact-store';
import { S3ArtifactStore } from './s3-artifact-store';

export interface CreateArtifactStoreOptions {
  /** FORGELINE_ARTIFACT_URI. */
  uri: string;
  /** S3 settings; ignored for file: roots. */
  s3?: {
    /** FORGELINE_S3_ENDPOINT, for S3-compatible servers. */
    endpoint?: string;
    region?: string;
    forcePathStyle?: boolean;
    /** Static credentials; both or neither. Unset: the AWS default provider chain. */
    accessKeyId?: string;
    secretAccessKey?: string;
  };
}

export function createArtifactStore(opts: CreateArtifactStoreOptions): ArtifactStore {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(opts.uri)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'file':
      return new LocalArtifactStore(opts.uri);
    case 's3': {
      const { endpoint, region, forcePathStyle, accessKeyId, secretAccessKey } = opts.s3 ?? {};
      if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
        throw new ConfigError('S3 credentials need both an access key ID and a secret access key (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)');
      }
      return new S3ArtifactStore(opts.uri, {
        ...(endpoint !== undefined ? { endpoint } : {}),
        ...(region !== undefined ? { region } : {}),
        ...(forcePathStyle !== undefined ? { forcePathStyle } : {}),
        ...(accessKeyId !== undefined && secretAccessKey !== undefined ? { credentials: { accessKeyId, secretAccessKey } } : {}),
      });
    }
    default:
      throw new ConfigError(
        `unsupported artifact store URI ${JSON.stringify(opts.uri)}: FORGELINE_ARTIFACT_URI must be ` +
          'file:///absolute/dir or s3://bucket[/prefix]',
      );
  }
}
