"""The local multi-region runtime: simulated AWS regions on loopback running what `cdk deploy` deploys.

Each region is one moto server (DynamoDB, Streams, SQS and S3 on one port). Tables, queues and
buckets are created from the synthesized CloudFormation templates; the functions run unmodified in
their own worker processes, invoked by local stand-ins for Lambda's event source mappings that read
their settings from the same templates. docs/LOCAL.md describes the design and the deviations.

Modules import lazily (this file imports nothing): a function's worker process imports only
``ddbrep.local.worker`` before its environment is set.
"""
