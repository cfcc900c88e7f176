"""The CDK app's stacks and constructs: config (pure), one stack per region, constructs per concern."""
