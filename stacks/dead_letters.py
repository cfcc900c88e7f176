"""The dead-letter store of a source region: one S3 bucket for dead letters and large handoff payloads."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import defaults


class DeadLetterStore(Construct):
    """Holds what could not be applied (``dead-letters/``), batches Lambda gave up on (the mapping's
    on-failure destination) and handoff payloads too large for a queue message (``handoff/``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        encryption_key: kms.IKey | None,
        handoff_retention_days: int = defaults.HANDOFF_RETENTION_DAYS,
        dead_letter_retention_days: int = defaults.DEAD_LETTER_RETENTION_DAYS,
    ) -> None:
        super().__init__(scope, construct_id)
        # Objects hold full items: with the region's customer managed key, SSE-KMS with an S3 Bucket Key
        # (S3 asks KMS for a bucket-level key now and then instead of a data key per object).
        encryption: dict[str, Any] = {"encryption": s3.BucketEncryption.S3_MANAGED}
        if encryption_key is not None:
            encryption = {
                "encryption": s3.BucketEncryption.KMS,
                "encryption_key": encryption_key,
                "bucket_key_enabled": True,
            }
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            **encryption,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            # Every object holds a full item copy: none is kept for ever (README, "What is stored where").
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireHandoffPayloads",
                    prefix=defaults.HANDOFF_PREFIX,
                    # A payload is useless once the queue message pointing at it has expired.
                    expiration=Duration.days(handoff_retention_days + 1),
                ),
                s3.LifecycleRule(
                    id="ExpireDeadLetters",
                    prefix=defaults.DEAD_LETTER_PREFIX,
                    expiration=Duration.days(dead_letter_retention_days),
                ),
                s3.LifecycleRule(
                    # The conflict log may hold losing items' images: kept like dead letters.
                    id="ExpireConflictLog",
                    prefix=defaults.CONFLICT_PREFIX,
                    expiration=Duration.days(dead_letter_retention_days),
                ),
                s3.LifecycleRule(
                    id="ExpireDiscardedBatches",
                    prefix=defaults.ON_FAILURE_PREFIX,
                    expiration=Duration.days(dead_letter_retention_days),
                ),
                s3.LifecycleRule(
                    # A redriven, rewritten or expired entry leaves a noncurrent version behind.
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(defaults.NONCURRENT_VERSION_DAYS),
                    expired_object_delete_marker=True,
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            # Dead letters are user data waiting for a redrive: `cdk destroy` keeps the bucket.
            removal_policy=RemovalPolicy.RETAIN,
        )
