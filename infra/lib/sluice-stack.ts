// The Sluice stack: the same resources, names and permissions as ../template.yaml, for teams
// that deploy with the CDK. The logical IDs are the template's on purpose: the test
// tests/tests/template.rs (with sluice_testkit::stack) compares the two stacks resource by resource, and a team can move from one
// tool to the other without CloudFormation replacing the bucket or the table.
import * as path from 'path';
import {
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  CfnResource,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
  Token,
  Validations,
} from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';

export interface SluiceStackProps extends StackProps {
  /**
   * A folder holding `sluice-export/bootstrap`, `sluice-integrate/bootstrap` and
   * `sluice-control/bootstrap`, as
   * `cargo lambda build --release --arm64` leaves them in `target/lambda`.
   */
  readonly assets: string;
  /** The rules `sluice schedules --json` lists; by default one, for the ExportName parameter. */
  readonly schedules?: ScheduledExport[];
}

/** One export's schedule, as `sluice schedules --json` prints it. */
export interface ScheduledExport {
  /** The rule's logical ID (template.yaml's). */
  readonly id: string;
  readonly export: string;
  /** An EventBridge expression; null for the stack's ExportSchedule parameter. */
  readonly schedule: string | null;
  /** Deployed disabled (the export's state is "paused"). */
  readonly paused: boolean;
}

/** The dashboard's widgets, with `${…}` for Fn::Sub: template.yaml's DashboardBody. */
const DASHBOARD_BODY =
  '{"widgets":[{"type":"metric","x":0,"y":0,"width":12,"height":6,"properties":{"title":"Rows and bytes exported (export ${ExportName})","region":"${AWS::Region}","period":900,"view":"timeSeries","metrics":[["Sluice","Rows","Export","${ExportName}",{"stat":"Sum"}],["Sluice","Bytes","Export","${ExportName}",{"stat":"Sum","label":"Bytes"}]]}},{"type":"metric","x":12,"y":0,"width":12,"height":6,"properties":{"title":"Run duration (ms)","region":"${AWS::Region}","period":900,"view":"timeSeries","metrics":[["Sluice","DurationMs","Export","${ExportName}",{"stat":"Maximum","label":"Longest"}],["Sluice","DurationMs","Export","${ExportName}",{"stat":"Average","label":"Average"}]]}},{"type":"metric","x":0,"y":6,"width":12,"height":6,"properties":{"title":"Failed runs, late rows and function errors","region":"${AWS::Region}","period":900,"view":"timeSeries","metrics":[["Sluice","FailedRuns","Export","${ExportName}",{"stat":"Sum"}],["Sluice","LateRows","Export","${ExportName}",{"stat":"Sum"}],["AWS/Lambda","Errors","FunctionName","${ExportFunction}",{"stat":"Sum","label":"Export function errors"}],["AWS/Lambda","Errors","FunctionName","${IntegrationFunction}",{"stat":"Sum","label":"Integration function errors"}]]}},{"type":"metric","x":12,"y":6,"width":12,"height":6,"properties":{"title":"Deliveries (integration ${IntegrationName})","region":"${AWS::Region}","period":900,"view":"timeSeries","metrics":[["AWS/Lambda","Invocations","FunctionName","${IntegrationFunction}",{"stat":"Sum","label":"Deliveries"}],["Sluice","Undelivered","Integration","${IntegrationName}",{"stat":"Maximum","label":"Manifests waiting"}],["Sluice","UndeliveredAgeSeconds","Integration","${IntegrationName}",{"stat":"Maximum","label":"Oldest waiting (s)"}]]}},{"type":"metric","x":0,"y":12,"width":12,"height":6,"properties":{"title":"Alerts opened or resolved (ExportAlert events)","region":"${AWS::Region}","period":900,"view":"timeSeries","metrics":[["AWS/Events","MatchedEvents","EventBusName","${EventBus}","RuleName","${AWS::StackName}-alerts",{"stat":"Sum","label":"Alert events"}]]}},{"type":"metric","x":12,"y":12,"width":12,"height":6,"properties":{"title":"Dead-letter queues","region":"${AWS::Region}","period":300,"view":"timeSeries","metrics":[["AWS/SQS","ApproximateNumberOfMessagesVisible","QueueName","${ExportDeadLetters.QueueName}",{"stat":"Maximum","label":"Export"}],["AWS/SQS","ApproximateNumberOfMessagesVisible","QueueName","${IntegrationDeadLetters.QueueName}",{"stat":"Maximum","label":"Integration"}]]}},{"type":"alarm","x":0,"y":18,"width":24,"height":4,"properties":{"title":"Alarms","alarms":["${ExportErrorsAlarm.Arn}","${FailedRunsAlarm.Arn}","${IntegrationErrorsAlarm.Arn}","${DeadLettersAlarm.Arn}","${ExportDeadLettersAlarm.Arn}","${ManifestRuleFailuresAlarm.Arn}","${UndeliveredAlarm.Arn}"]}}]}';

/** Gives the CloudFormation resource behind `construct` the logical ID `id` (template.yaml's). */
function logicalId<T extends IConstruct>(construct: T, id: string): T {
  const resource = construct instanceof CfnResource ? construct : (construct.node.defaultChild as CfnResource);
  resource.overrideLogicalId(id);
  return construct;
}

export class SluiceStack extends Stack {
  constructor(scope: Construct, id: string, props: SluiceStackProps) {
    super(scope, id, {
      description:
        'Sluice: scheduled incremental exports from a warehouse to S3, and delivery of each run to an API. One integration; copy its blocks for more (docs/deploy.md).',
      ...props,
    });

    // ---------------------------------------------------------------------------------------
    // Parameters: the same as template.yaml's, so one deployment guide serves both.
    // ---------------------------------------------------------------------------------------
    const configKey = new CfnParameter(this, 'ConfigKey', {
      default: 'config/sluice.toml',
      allowedPattern: '^config/[A-Za-z0-9_./-]+$',
      description:
        'Key of the config file (sluice.toml) in the export bucket, under config/ (outside the runs\' prefix, so the export function cannot change it and the runs\' expiry does not delete it).',
    }).valueAsString;
    const exportPrefix = new CfnParameter(this, 'ExportPrefix', {
      default: 'exports',
      allowedPattern: '^(?!config$)[a-z0-9_.-]+$',
      description:
        'The prefix of the exports\' destinations (destination = "s3://<bucket>/<prefix>"); not config, where the config file is.',
    }).valueAsString;
    const exportName = new CfnParameter(this, 'ExportName', {
      default: 'crm_updates',
      allowedPattern: '^[a-z0-9_]{1,64}$',
      description: 'The export the schedule runs (an [[export]] name in the config).',
    }).valueAsString;
    const exportSchedule = new CfnParameter(this, 'ExportSchedule', {
      default: 'rate(15 minutes)',
      description: 'When the export runs (an EventBridge rate() or cron() expression).',
    }).valueAsString;
    const scheduleState = new CfnParameter(this, 'ScheduleState', {
      default: 'ENABLED',
      allowedValues: ['ENABLED', 'DISABLED'],
    }).valueAsString;
    const sourceSecretArn = new CfnParameter(this, 'SourceSecretArn', {
      description:
        'The Secrets Manager secret holding the source\'s credentials (credentials = "secretsmanager:<this ARN>").',
    }).valueAsString;
    const integrationName = new CfnParameter(this, 'IntegrationName', {
      default: 'hubspot',
      allowedPattern: '^[a-z0-9_]{1,64}$',
      description: 'The integration the integration function delivers (an [integrations.<name>] of the config).',
    }).valueAsString;
    const tokenSecretArn = new CfnParameter(this, 'IntegrationTokenSecretArn', {
      description:
        'The Secrets Manager secret holding the integration\'s API token (token = "secretsmanager:<this ARN>").',
    }).valueAsString;
    const secretHosts = new CfnParameter(this, 'SecretHosts', {
      default: '',
      allowedPattern: '^[A-Za-z0-9*.,-]*$',
      description:
        'Hosts a token or credential may be sent to besides api.hubapi.com and *.snowflakecomputing.com (comma-separated, exact or *.domain, e.g. hooks.example.com); the config cannot widen it.',
    }).valueAsString;
    const integrationConcurrency = new CfnParameter(this, 'IntegrationConcurrency', {
      type: 'Number',
      default: 2,
      minValue: 2,
      maxValue: 1000,
      description:
        'At most this many integration invocations at once (SQS MaximumConcurrency); set the integration\'s concurrency to the same number.',
    }).valueAsNumber;
    const retentionDays = new CfnParameter(this, 'RetentionDays', {
      type: 'Number',
      default: 90,
      minValue: 1,
      description: 'Days exported runs (parts, manifests, failures files) are kept.',
    }).valueAsNumber;
    const bucketVersioning = new CfnParameter(this, 'BucketVersioning', {
      default: 'Suspended',
      allowedValues: ['Enabled', 'Suspended'],
      description:
        "Enabled keeps overwritten or deleted objects as noncurrent versions (those under the export prefix expire after RetentionDays; the config's are kept).",
    }).valueAsString;
    const logRetentionDays = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: 365,
      allowedValues: ['365', '400', '545', '731', '1096', '1827', '2192', '2557', '2922', '3288', '3653'],
    }).valueAsNumber;
    const alarmTopicArn = new CfnParameter(this, 'AlarmTopicArn', {
      default: '',
      description: 'An SNS topic for alarms (empty for alarms without actions).',
    }).valueAsString;
    const alertsCheckSchedule = new CfnParameter(this, 'AlertsCheckSchedule', {
      default: 'rate(15 minutes)',
      description:
        "How often every export's freshness is checked (no successful run within its alerts.freshness), so a schedule that stopped firing is noticed (an EventBridge rate() or cron() expression).",
    }).valueAsString;
    const undeliveredAlarmSeconds = new CfnParameter(this, 'UndeliveredAlarmSeconds', {
      type: 'Number',
      default: 3600,
      minValue: 900,
      description:
        "UndeliveredAlarm fires when a committed manifest has waited longer than this for its delivery (seconds; at least 900, the sweep's period).",
    }).valueAsNumber;
    Validations.of(this).acknowledge({
      id: 'CloudFormation-Validate::W2509',
      reason: 'SourceSecretArn and IntegrationTokenSecretArn name secrets, they hold none: the values stay in Secrets Manager.',
    });
    const hasAlarmTopic = new CfnCondition(this, 'HasAlarmTopic', {
      expression: Fn.conditionNot(Fn.conditionEquals(alarmTopicArn, '')),
    });

    // ---------------------------------------------------------------------------------------
    // Encryption: one customer managed key for the bucket, the table, the queues and the logs.
    // ---------------------------------------------------------------------------------------
    const key = logicalId(
      new kms.Key(this, 'Key', {
        description: 'Sluice data at rest (exports, history, queues, logs)',
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      'Key',
    );
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'LogsEncrypt',
        principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:/aws/lambda/*`,
          },
        },
      }),
    );
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'EventsToEncryptedQueues',
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );

    // ---------------------------------------------------------------------------------------
    // Storage: the export bucket and the history table. Both outlive the stack: exported runs
    // and the watermarks are the team's data (docs/deploy.md, "Tearing down").
    // ---------------------------------------------------------------------------------------
    const bucket = logicalId(
      new s3.Bucket(this, 'ExportBucket', {
        encryption: s3.BucketEncryption.KMS,
        encryptionKey: key,
        bucketKeyEnabled: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforceSSL: true,
        removalPolicy: RemovalPolicy.RETAIN,
        lifecycleRules: [
          {
            id: 'expire-runs',
            prefix: `${exportPrefix}/`,
            expiration: Duration.days(retentionDays),
            noncurrentVersionExpiration: Duration.days(retentionDays),
          },
          { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        ],
      }),
      'ExportBucket',
    );
    // Set on the resource itself: the construct's `eventBridgeEnabled` deploys a custom
    // resource (a Lambda function of its own) to do what one property does.
    (bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
    // On or off from a parameter: the construct only takes a boolean.
    (bucket.node.defaultChild as s3.CfnBucket).versioningConfiguration = { status: bucketVersioning };
    logicalId(bucket.policy!, 'ExportBucketPolicy');
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Access logging needs a second bucket the team chooses; CloudTrail data events are the recommended audit trail (docs/deploy.md).',
    });

    const table = logicalId(
      new dynamodb.Table(this, 'HistoryTable', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: 'ttl',
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: key,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      'HistoryTable',
    );

    const bus = logicalId(
      new events.EventBus(this, 'EventBus', { eventBusName: Fn.sub('${AWS::StackName}-sluice') }),
      'EventBus',
    );

    const queue = (id: string, props: sqs.QueueProps = {}) =>
      logicalId(
        new sqs.Queue(this, id, {
          encryption: sqs.QueueEncryption.KMS,
          encryptionMasterKey: key,
          enforceSSL: true,
          ...props,
        }),
        id,
      );
    // Under /aws/lambda/: the key policy lets CloudWatch Logs use the key for those only.
    const logGroup = (id: string, name: string) =>
      logicalId(
        new logs.LogGroup(this, id, {
          logGroupName: `/aws/lambda/${Aws.STACK_NAME}-${name}`,
          retention: logRetentionDays as logs.RetentionDays,
          encryptionKey: key,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        id,
      );

    // ---------------------------------------------------------------------------------------
    // The export function, run by its schedule.
    // ---------------------------------------------------------------------------------------
    const exportLogs = logGroup('ExportLogs', 'export');
    // An export's alerts.webhook: a secret named <stack>-alerts-*, holding the URL.
    const alertWebhook = new iam.PolicyStatement({
      sid: 'AlertWebhook',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [`arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${Aws.STACK_NAME}-alerts-*`],
    });
    const exportDeadLetters = queue('ExportDeadLetters', { retentionPeriod: Duration.days(14) });
    Validations.of(exportDeadLetters).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is the dead-letter queue of the export function\'s asynchronous invocations.',
    });

    const bucketArn = bucket.bucketArn;
    const dataKey = new iam.PolicyStatement({
      sid: 'DataKey',
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: [key.keyArn],
    });
    const exportRole = logicalId(
      new iam.Role(this, 'ExportRole', {
        description: "The export function's own config, runs prefix, export history items (reading the catalog's), bus and source secret",
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        inlinePolicies: {
          'sluice-export': new iam.PolicyDocument({
            statements: [
              logStatement(exportLogs),
              new iam.PolicyStatement({ sid: 'ReadConfig', actions: ['s3:GetObject'], resources: [`${bucketArn}/${configKey}`] }),
              new iam.PolicyStatement({
                sid: 'WriteRuns',
                actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
                resources: [`${bucketArn}/${exportPrefix}/*`],
              }),
              new iam.PolicyStatement({
                sid: 'ListRuns',
                actions: ['s3:ListBucket'],
                resources: [bucketArn],
                conditions: { StringLike: { 's3:prefix': `${exportPrefix}/*` } },
              }),
              // The history table by partition: the export function writes only the exports'
              // items (lease, watermarks, runs, open-run markers) and their alerts, and reads
              // the catalog.
              new iam.PolicyStatement({
                sid: 'History',
                actions: [
                  'dynamodb:GetItem',
                  'dynamodb:PutItem',
                  'dynamodb:UpdateItem',
                  'dynamodb:DeleteItem',
                  'dynamodb:Query',
                  'dynamodb:ConditionCheckItem',
                ],
                resources: [table.tableArn],
                conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['EXPORT#*', 'ALERTS#*'] } },
              }),
              alertWebhook,
              new iam.PolicyStatement({
                sid: 'ReadCatalog',
                actions: ['dynamodb:GetItem', 'dynamodb:Query'],
                resources: [table.tableArn],
                conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['CATALOG', 'CATALOG#*'] } },
              }),
              new iam.PolicyStatement({ sid: 'Events', actions: ['events:PutEvents'], resources: [bus.eventBusArn] }),
              new iam.PolicyStatement({
                sid: 'SourceCredentials',
                actions: ['secretsmanager:GetSecretValue'],
                resources: [sourceSecretArn],
              }),
              dataKey,
              // Sending to the dead-letter queue and X-Ray: granted by the function construct.
            ],
          }),
        },
      }),
      'ExportRole',
    );
    allowWildcards(exportRole, '*', '<ExportBucket.Arn>/<ExportPrefix>/*', ALERT_WEBHOOKS);

    const functionEnv = {
      SLUICE_CONFIG: `s3://${bucket.bucketName}/${configKey}`,
      SLUICE_HISTORY_TABLE: table.tableName,
      SLUICE_EVENT_BUS: bus.eventBusName,
      SLUICE_SSE: 'aws:kms',
      SLUICE_KMS_KEY_ID: key.keyArn,
      SLUICE_SECRET_HOSTS: secretHosts,
      // Run and delivery records expire with the files they name.
      SLUICE_RECORD_TTL_DAYS: Token.asString(retentionDays),
    };
    const exportFunction = logicalId(
      new lambda.Function(this, 'ExportFunction', {
        description: 'Runs one export (scheduled or on demand)',
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(props.assets, 'sluice-export')),
        memorySize: 1024,
        timeout: Duration.seconds(900),
        reservedConcurrentExecutions: 10,
        role: exportRole,
        logGroup: exportLogs,
        deadLetterQueue: exportDeadLetters,
        tracing: lambda.Tracing.ACTIVE,
        environment: functionEnv,
        environmentEncryption: key,
      }),
      'ExportFunction',
    );
    // A scheduled invocation that fails (or finds the export already running) is not retried:
    // the next scheduled run is the retry, and the failed event goes to the dead-letter queue.
    logicalId(
      new lambda.CfnEventInvokeConfig(this, 'ExportFunctionEventInvokeConfig', {
        functionName: exportFunction.functionName,
        qualifier: '$LATEST',
        maximumRetryAttempts: 0,
        // As SAM writes it.
        destinationConfig: {},
      }),
      'ExportFunctionEventInvokeConfig',
    );

    // One rule per export that runs on a schedule: the ExportName parameter's, or those of
    // `sluice schedules --json` (template.yaml's generated section, as JSON).
    const schedules = props.schedules ?? [{ id: 'ExportFunctionSchedule', export: exportName, schedule: null, paused: false }];
    for (const s of schedules) {
      const rule = logicalId(
        new events.Rule(this, s.id, {
          description: `Runs export ${s.export}`,
          schedule: events.Schedule.expression(s.schedule ?? exportSchedule),
          targets: [
            new targets.LambdaFunction(exportFunction, {
              event: events.RuleTargetInput.fromObject({ export: s.export }),
            }),
          ],
        }),
        s.id,
      );
      // ENABLED or DISABLED from a parameter: the construct only takes a boolean.
      (rule.node.defaultChild as events.CfnRule).state = s.paused ? 'DISABLED' : scheduleState;
    }

    // ---------------------------------------------------------------------------------------
    // Alerts: freshness checked on its own schedule (a schedule that stopped firing leaves no
    // run to alert after), and every ExportAlert event to the alarm topic when there is one.
    // ---------------------------------------------------------------------------------------
    logicalId(
      new events.Rule(this, 'AlertsCheckRule', {
        description: "Checks every export's freshness (no successful run within its alerts.freshness)",
        schedule: events.Schedule.expression(alertsCheckSchedule),
        targets: [
          new targets.LambdaFunction(exportFunction, { event: events.RuleTargetInput.fromObject({ check_alerts: true }) }),
        ],
      }),
      'AlertsCheckRule',
    );
    // The topic's policy must let events.amazonaws.com publish (docs/deploy.md#alerts). Without
    // a topic the rule still counts the alerts (the dashboard's AWS/Events MatchedEvents).
    const alertsRule = logicalId(
      new events.CfnRule(this, 'AlertsRule', {
        // Named, so the dashboard can name it in its metric (a rule on a custom bus is measured
        // by bus and rule name; its Ref would be "bus|rule").
        name: `${Aws.STACK_NAME}-alerts`,
        description: "Sluice's ExportAlert events (an alert opening or resolving), to the alarm topic",
        eventBusName: bus.eventBusName,
        state: 'ENABLED',
        eventPattern: { source: ['sluice'], 'detail-type': ['ExportAlert'] },
      }),
      'AlertsRule',
    );
    alertsRule.addPropertyOverride(
      'Targets',
      Fn.conditionIf(hasAlarmTopic.logicalId, [{ Id: 'alarm-topic', Arn: alarmTopicArn }], Aws.NO_VALUE),
    );
    Validations.of(alertsRule).acknowledge({
      id: 'CloudFormation-Validate::W1030',
      reason: 'AlarmTopicArn is used only under HasAlarmTopic, when it is not empty.',
    });

    // ---------------------------------------------------------------------------------------
    // Fan-out: a manifest written under the export's prefix → EventBridge rule → SQS buffer →
    // the integration function, at most IntegrationConcurrency at once (the API's limit holds).
    // ---------------------------------------------------------------------------------------
    const integrationDeadLetters = queue('IntegrationDeadLetters', { retentionPeriod: Duration.days(14) });
    const integrationQueue = queue('IntegrationQueue', {
      // Six times the function's timeout, as AWS advises for SQS event sources (an invocation
      // the function's concurrency throttles is retried within it). One message per invocation
      // (batch size 1), so a message's clock runs only while its own manifest is delivered.
      visibilityTimeout: Duration.seconds(5400),
      // A delivery that reaches its deadline with progress continues in a fresh message and
      // the old one succeeds, so a receive is spent only on an invocation that failed: five
      // failures in a row put the manifest in the dead-letter queue (DeadLettersAlarm).
      deadLetterQueue: { queue: integrationDeadLetters, maxReceiveCount: 5 },
    });
    const manifestRule = logicalId(
      new events.Rule(this, 'ManifestRule', {
        description: `Manifests of export ${exportName} for integration ${integrationName}`,
        eventPattern: {
          source: ['aws.s3'],
          detailType: ['Object Created'],
          detail: {
            bucket: { name: [bucket.bucketName] },
            object: { key: [{ wildcard: `${exportPrefix}/${exportName}/*/manifest.json` }] },
          },
        },
        // A plain target: the queue policy below is the only grant, scoped to this rule
        // (the library's SqsQueue target would also widen the key policy).
        targets: [{ bind: () => ({ id: 'integration-queue', arn: integrationQueue.queueArn }) }],
      }),
      'ManifestRule',
    );
    integrationQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ManifestRuleSends',
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['sqs:SendMessage'],
        resources: [integrationQueue.queueArn],
        conditions: { ArnEquals: { 'aws:SourceArn': manifestRule.ruleArn } },
      }),
    );
    for (const [q, id] of [
      [exportDeadLetters, 'ExportDeadLettersPolicy'],
      [integrationDeadLetters, 'IntegrationDeadLettersPolicy'],
      [integrationQueue, 'IntegrationQueuePolicy'],
    ] as const) {
      // enforceSSL (and the statement above) made each queue its policy.
      logicalId(q.node.children.find((c) => c instanceof sqs.QueuePolicy)!, id);
    }

    const integrationLogs = logGroup('IntegrationLogs', `integrate-${integrationName}`);
    const runs = `${bucketArn}/${exportPrefix}/${exportName}`;
    const integrationRole = logicalId(
      new iam.Role(this, 'IntegrationRole', {
        description: "The integration function's own config, export runs and run records, ledger items, bus, token and queue",
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        inlinePolicies: {
          'sluice-integrate': new iam.PolicyDocument({
            statements: [
              logStatement(integrationLogs),
              new iam.PolicyStatement({ sid: 'ReadConfig', actions: ['s3:GetObject'], resources: [`${bucketArn}/${configKey}`] }),
              new iam.PolicyStatement({ sid: 'ReadRuns', actions: ['s3:GetObject'], resources: [`${runs}/*`] }),
              new iam.PolicyStatement({
                sid: 'WriteFailures',
                actions: ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
                resources: [`${runs}/*/failures/*`],
              }),
              new iam.PolicyStatement({
                sid: 'ListFailurePieces',
                actions: ['s3:ListBucket'],
                resources: [bucketArn],
                conditions: { StringLike: { 's3:prefix': `${exportPrefix}/${exportName}/*` } },
              }),
              new iam.PolicyStatement({
                sid: 'Ledger',
                actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
                resources: [table.tableArn],
                conditions: {
                  'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`INTEGRATION#${integrationName}`] },
                },
              }),
              // Its export's run records, read only: a manifest is delivered only if its run
              // committed, and in run order.
              new iam.PolicyStatement({
                sid: 'ReadHistory',
                actions: ['dynamodb:GetItem', 'dynamodb:Query'],
                resources: [table.tableArn],
                conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`EXPORT#${exportName}`] } },
              }),
              // Its export's alerts: a delivery that rejects rows opens (or resolves) one.
              new iam.PolicyStatement({
                sid: 'Alerts',
                actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
                resources: [table.tableArn],
                conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`ALERTS#${exportName}`] } },
              }),
              alertWebhook,
              // A delivery that reached its deadline with progress continues in a fresh message
              // on its own queue (SLUICE_CONTINUATION_QUEUE).
              new iam.PolicyStatement({
                sid: 'Continuation',
                actions: ['sqs:SendMessage'],
                resources: [integrationQueue.queueArn],
              }),
              new iam.PolicyStatement({ sid: 'Events', actions: ['events:PutEvents'], resources: [bus.eventBusArn] }),
              new iam.PolicyStatement({
                sid: 'Token',
                actions: ['secretsmanager:GetSecretValue'],
                resources: [tokenSecretArn],
              }),
              dataKey,
              // Consuming the queue and X-Ray: granted by the function construct and its event source.
            ],
          }),
        },
      }),
      'IntegrationRole',
    );
    allowWildcards(
      integrationRole,
      '*',
      '<ExportBucket.Arn>/<ExportPrefix>/<ExportName>/*',
      '<ExportBucket.Arn>/<ExportPrefix>/<ExportName>/*/failures/*',
      ALERT_WEBHOOKS,
    );

    const integrationFunction = logicalId(
      new lambda.Function(this, 'IntegrationFunction', {
        description: 'Delivers the rows of each manifest to the integration\'s API',
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(props.assets, 'sluice-integrate')),
        memorySize: 512,
        timeout: Duration.seconds(900),
        reservedConcurrentExecutions: integrationConcurrency,
        role: integrationRole,
        logGroup: integrationLogs,
        tracing: lambda.Tracing.ACTIVE,
        // SLUICE_CONTINUATION_QUEUE, the queue URL: where a delivery that reached its deadline
        // with progress continues.
        environment: { ...functionEnv, SLUICE_INTEGRATION: integrationName, SLUICE_CONTINUATION_QUEUE: integrationQueue.queueUrl },
        environmentEncryption: key,
      }),
      'IntegrationFunction',
    );
    // The sweep (IntegrationSweepSchedule) invokes it asynchronously: a sweep that fails is not
    // retried, the next sweep is the retry.
    logicalId(
      new lambda.CfnEventInvokeConfig(this, 'IntegrationFunctionEventInvokeConfig', {
        functionName: integrationFunction.functionName,
        qualifier: '$LATEST',
        maximumRetryAttempts: 0,
        // A sweep throttled behind busy deliveries is dropped after 15 minutes rather than
        // queued for hours: the next sweep comes then anyway.
        maximumEventAgeInSeconds: 900,
        // As SAM writes it.
        destinationConfig: {},
      }),
      'IntegrationFunctionEventInvokeConfig',
    );
    const manifests = new SqsEventSource(integrationQueue, {
      // One manifest per invocation: a message's visibility clock must not run while other
      // messages of its batch are delivered.
      batchSize: 1,
      reportBatchItemFailures: true,
      maxConcurrency: integrationConcurrency,
    });
    integrationFunction.addEventSource(manifests);
    const mapping = integrationFunction.node.children.find((c) => c instanceof lambda.EventSourceMapping);
    logicalId(mapping!, 'IntegrationFunctionManifests');

    // The sweep: every 15 minutes the integration function delivers each committed manifest of
    // its export not delivered yet, in run order (whatever an event missed, or the dead-letter
    // queue holds), and reports the oldest one's age as Sluice/UndeliveredAgeSeconds
    // (UndeliveredAlarm).
    logicalId(
      new events.Rule(this, 'IntegrationSweepSchedule', {
        description: `Delivers what integration ${integrationName} has not delivered of export ${exportName}`,
        schedule: events.Schedule.rate(Duration.minutes(15)),
        targets: [
          new targets.LambdaFunction(integrationFunction, { event: events.RuleTargetInput.fromObject({ sweep: true }) }),
        ],
      }),
      'IntegrationSweepSchedule',
    );

    // ---------------------------------------------------------------------------------------
    // The control API: one binary deployed twice, each behind its own IAM-authenticated
    // function URL. ConfigurePolicy may invoke the configure function's URL, OperatePolicy the
    // operate function's; each serves the reads and only its own grant's changes (docs/api.md).
    // Orchestrations are EventBridge rules named <stack>-orch-<export>.<name>.
    // ---------------------------------------------------------------------------------------
    const rulePrefix = `${Aws.STACK_NAME}-orch-`;
    const orchestrationRules = `arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:rule/${rulePrefix}*`;
    const controlStatements = () => [
      new iam.PolicyStatement({ sid: 'ReadConfig', actions: ['s3:GetObject'], resources: [`${bucketArn}/${configKey}`] }),
      // The catalog (entries, definitions, audit records) is the only partition they write.
      new iam.PolicyStatement({
        sid: 'Catalog',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
        resources: [table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['CATALOG', 'CATALOG#*'] } },
      }),
      // Status: runs and watermarks, and each integration's deliveries, read only.
      new iam.PolicyStatement({
        sid: 'ReadHistory',
        actions: ['dynamodb:GetItem', 'dynamodb:Query'],
        resources: [table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['EXPORT#*', 'INTEGRATION#*'] } },
      }),
    ];
    const controlFunction = (
      id: string,
      description: string,
      role: iam.Role,
      group: logs.LogGroup,
      environment: Record<string, string>,
    ) => {
      const fn = logicalId(
        new lambda.Function(this, id, {
          description,
          runtime: lambda.Runtime.PROVIDED_AL2023,
          architecture: lambda.Architecture.ARM_64,
          handler: 'bootstrap',
          code: lambda.Code.fromAsset(path.join(props.assets, 'sluice-control')),
          memorySize: 256,
          timeout: Duration.seconds(60),
          reservedConcurrentExecutions: 5,
          role,
          logGroup: group,
          tracing: lambda.Tracing.ACTIVE,
          environment,
          environmentEncryption: key,
        }),
        id,
      );
      const url = logicalId(fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM }), `${id}Url`);
      // By name, as SAM's FunctionUrlConfig writes it (the target takes a name or an ARN).
      (url.node.defaultChild as lambda.CfnUrl).targetFunctionArn = fn.functionName;
      return { fn, url };
    };
    const controlEnv = {
      SLUICE_CONFIG: `s3://${bucket.bucketName}/${configKey}`,
      SLUICE_HISTORY_TABLE: table.tableName,
      SLUICE_RULE_PREFIX: rulePrefix,
      SLUICE_EXPORT_FUNCTION_ARN: exportFunction.functionArn,
    };

    const configureApiLogs = logGroup('ConfigureApiLogs', 'control-configure');
    const configureApiRole = logicalId(
      new iam.Role(this, 'ConfigureApiRole', {
        description:
          "The configure API's catalog items, config, source secret, destination probe, and removing a deleted export's rules",
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        inlinePolicies: {
          'sluice-configure-api': new iam.PolicyDocument({
            statements: [
              logStatement(configureApiLogs),
              ...controlStatements(),
              new iam.PolicyStatement({
                sid: 'ProbeDestination',
                actions: ['s3:PutObject', 's3:DeleteObject'],
                resources: [`${bucketArn}/${exportPrefix}/*/.sluice-write-check`],
              }),
              new iam.PolicyStatement({
                sid: 'SourceCredentials',
                actions: ['secretsmanager:GetSecretValue'],
                resources: [sourceSecretArn],
              }),
              new iam.PolicyStatement({
                sid: 'RemoveRules',
                actions: ['events:RemoveTargets', 'events:DeleteRule'],
                resources: [orchestrationRules],
              }),
              dataKey,
            ],
          }),
        },
      }),
      'ConfigureApiRole',
    );
    allowWildcards(configureApiRole, '*', '<ExportBucket.Arn>/<ExportPrefix>/*/.sluice-write-check', ORCHESTRATION_RULES);

    // A manifest written under the export prefix is delivered to the API with the production
    // token, so no one but Sluice's own roles may write or delete there: the export function
    // writes the runs, the integration function (its IAM) only their failures/, the configure
    // function (its IAM) only the .sluice-write-check probe.
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlySluiceWritesRuns',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject', 's3:DeleteObject'],
        resources: [`${bucketArn}/${exportPrefix}/*`],
        conditions: {
          ArnNotEquals: { 'aws:PrincipalArn': [exportRole.roleArn, integrationRole.roleArn, configureApiRole.roleArn] },
        },
      }),
    );
    const configureApi = controlFunction(
      'ConfigureApiFunction',
      'Control API, configure permission (create, edit, activate, discard, delete exports)',
      configureApiRole,
      configureApiLogs,
      { SLUICE_CONTROL_GRANT: 'configure', ...controlEnv, SLUICE_SSE: 'aws:kms', SLUICE_KMS_KEY_ID: key.keyArn },
    );

    const operateApiLogs = logGroup('OperateApiLogs', 'control-operate');
    const operateApiRole = logicalId(
      new iam.Role(this, 'OperateApiRole', {
        description: "The operate API's catalog items, config, and the orchestrations' EventBridge rules",
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        inlinePolicies: {
          'sluice-operate-api': new iam.PolicyDocument({
            statements: [
              logStatement(operateApiLogs),
              ...controlStatements(),
              new iam.PolicyStatement({
                sid: 'Rules',
                // Pausing and resuming put the rule again with its state, which also restores a lost one.
                // Schedules only: a rule with an event pattern (a source or detail type) is refused.
                actions: ['events:PutRule'],
                resources: [orchestrationRules],
                conditions: { Null: { 'events:source': 'true', 'events:detail-type': 'true' } },
              }),
              new iam.PolicyStatement({
                sid: 'RulesRemoved',
                actions: ['events:RemoveTargets', 'events:DeleteRule'],
                resources: [orchestrationRules],
              }),
              new iam.PolicyStatement({
                sid: 'RuleTarget',
                actions: ['events:PutTargets'],
                resources: [orchestrationRules],
                // Every target the request names is the export function, and it names one.
                conditions: {
                  'ForAllValues:ArnEquals': { 'events:TargetArn': [exportFunction.functionArn] },
                  Null: { 'events:TargetArn': 'false' },
                },
              }),
              dataKey,
            ],
          }),
        },
      }),
      'OperateApiRole',
    );
    allowWildcards(operateApiRole, '*', ORCHESTRATION_RULES);
    const operateApi = controlFunction(
      'OperateApiFunction',
      'Control API, operate permission (pause and resume exports; orchestrations)',
      operateApiRole,
      operateApiLogs,
      { SLUICE_CONTROL_GRANT: 'operate', ...controlEnv },
    );

    // The orchestrations' rules invoke the export function: one permission for all of them.
    exportFunction.addPermission('OrchestrationsPermission', {
      principal: new iam.ServicePrincipal('events.amazonaws.com'),
      sourceArn: orchestrationRules,
      sourceAccount: Aws.ACCOUNT_ID,
    });
    logicalId(exportFunction.node.findChild('OrchestrationsPermission'), 'OrchestrationsPermission');

    // ---------------------------------------------------------------------------------------
    // Alarms: function errors, dead letters, failed export runs, manifests not handed to the
    // integration, and manifests not delivered.
    // ---------------------------------------------------------------------------------------
    const alarm = (
      id: string,
      description: string,
      metric: cloudwatch.Metric,
      options: Partial<cloudwatch.CreateAlarmOptions> = {},
    ) => {
      const a = logicalId(
        new cloudwatch.Alarm(this, id, {
          alarmDescription: description,
          metric,
          evaluationPeriods: 1,
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          ...options,
        }),
        id,
      );
      // The topic is optional, so the action is a condition, not an SNS construct.
      (a.node.defaultChild as cloudwatch.CfnAlarm).addPropertyOverride(
        'AlarmActions',
        Fn.conditionIf(hasAlarmTopic.logicalId, [alarmTopicArn], Aws.NO_VALUE),
      );
      Validations.of(a).acknowledge({
        id: 'CloudFormation-Validate::W1030',
        reason: 'AlarmTopicArn is used only under HasAlarmTopic, when it is not empty.',
      });
    };
    const errors = (fn: lambda.IFunction) =>
      new cloudwatch.Metric({
        namespace: 'AWS/Lambda',
        metricName: 'Errors',
        dimensionsMap: { FunctionName: fn.functionName },
        statistic: 'Sum',
        period: Duration.minutes(5),
      });
    alarm('ExportErrorsAlarm', 'The export function failed (a run failed, or a bad request or setting)', errors(exportFunction));
    alarm(
      'FailedRunsAlarm',
      `Export ${exportName} has failed runs (the Sluice FailedRuns metric)`,
      new cloudwatch.Metric({
        namespace: 'Sluice',
        metricName: 'FailedRuns',
        dimensionsMap: { Export: exportName },
        statistic: 'Sum',
        period: Duration.minutes(15),
      }),
    );
    alarm('IntegrationErrorsAlarm', 'The integration function failed an invocation', errors(integrationFunction));
    const waiting = (q: sqs.Queue) =>
      new cloudwatch.Metric({
        namespace: 'AWS/SQS',
        metricName: 'ApproximateNumberOfMessagesVisible',
        dimensionsMap: { QueueName: q.queueName },
        statistic: 'Maximum',
        period: Duration.minutes(5),
      });
    alarm(
      'DeadLettersAlarm',
      'Manifests the integration gave up on (after 5 attempts) wait in its dead-letter queue',
      waiting(integrationDeadLetters),
    );
    alarm(
      'ExportDeadLettersAlarm',
      "Scheduled export invocations that failed or found the export running wait in the export's dead-letter queue",
      waiting(exportDeadLetters),
    );
    // A manifest's event the rule could not put on the integration queue: only the sweep would
    // deliver that manifest.
    alarm(
      'ManifestRuleFailuresAlarm',
      'The manifest rule failed to send manifests\' events to the integration queue',
      new cloudwatch.Metric({
        namespace: 'AWS/Events',
        metricName: 'FailedInvocations',
        dimensionsMap: { RuleName: manifestRule.ruleName },
        statistic: 'Sum',
        period: Duration.minutes(5),
      }),
    );
    // Every sweep reports the age, 0 when nothing waits, so missing data is breaching: a sweep
    // that stops reporting (rule disabled, function failing before it reports) is itself a
    // problem, and would hide a backlog. Two periods, so one sweep late across a period's edge
    // does not fire it.
    alarm(
      'UndeliveredAlarm',
      `A committed manifest of export ${exportName} has waited over UndeliveredAlarmSeconds for integration ${integrationName}, or its sweep stopped reporting`,
      new cloudwatch.Metric({
        namespace: 'Sluice',
        metricName: 'UndeliveredAgeSeconds',
        dimensionsMap: { Integration: integrationName },
        statistic: 'Maximum',
        period: Duration.minutes(15),
      }),
      {
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        threshold: undeliveredAlarmSeconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      },
    );

    // One page for the export and its integration: rows, bytes, durations, failures,
    // deliveries, alerts, dead letters, and the alarms above (template.yaml's body, as is).
    const dashboard = logicalId(
      new cloudwatch.CfnDashboard(this, 'Dashboard', {
        dashboardName: `${Aws.STACK_NAME}-sluice`,
        dashboardBody: Fn.sub(DASHBOARD_BODY),
      }),
      'Dashboard',
    );

    // ---------------------------------------------------------------------------------------
    // The two roles of the product, as managed policies to attach to people or pipelines.
    // ---------------------------------------------------------------------------------------
    const configure = logicalId(
      new iam.ManagedPolicy(this, 'ConfigurePolicy', {
        description:
          'Configure Sluice exports and integrations (the config file, their secrets, the configure API); cannot run or schedule them',
        statements: [
          new iam.PolicyStatement({
            sid: 'EditConfig',
            actions: ['s3:GetObject', 's3:PutObject'],
            resources: [`${bucketArn}/${configKey}`],
          }),
          new iam.PolicyStatement({
            sid: 'SetSecrets',
            actions: ['secretsmanager:PutSecretValue', 'secretsmanager:DescribeSecret'],
            resources: [sourceSecretArn, tokenSecretArn],
          }),
          dataKey,
          ...throughUrl('ConfigureApi', configureApi.fn),
        ],
      }),
      'ConfigurePolicy',
    );
    const operate = logicalId(
      new iam.ManagedPolicy(this, 'OperatePolicy', {
        description:
          'Run and schedule Sluice exports (run now, pause and resume schedules, the operate API, read history and runs); cannot change their configuration',
        statements: [
          new iam.PolicyStatement({
            sid: 'RunNow',
            actions: ['lambda:InvokeFunction'],
            resources: [exportFunction.functionArn, integrationFunction.functionArn],
          }),
          new iam.PolicyStatement({
            sid: 'PauseAndResume',
            actions: ['events:EnableRule', 'events:DisableRule', 'events:DescribeRule'],
            // The schedules only (not the manifest rule): CloudFormation names them
            // <stack>-<logical id>-<suffix>, and their logical IDs start ExportFunctionSchedule or Schedule.
            resources: [
              `arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:rule/${Aws.STACK_NAME}-ExportFunctionSchedule-*`,
              `arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:rule/${Aws.STACK_NAME}-Schedule*`,
            ],
          }),
          new iam.PolicyStatement({
            sid: 'ReadHistory',
            actions: ['dynamodb:GetItem', 'dynamodb:Query'],
            resources: [table.tableArn],
          }),
          new iam.PolicyStatement({ sid: 'ReadRuns', actions: ['s3:GetObject'], resources: [`${bucketArn}/${exportPrefix}/*`] }),
          new iam.PolicyStatement({
            sid: 'ListRuns',
            actions: ['s3:ListBucket'],
            resources: [bucketArn],
            conditions: { StringLike: { 's3:prefix': `${exportPrefix}/*` } },
          }),
          new iam.PolicyStatement({ sid: 'DataKey', actions: ['kms:Decrypt'], resources: [key.keyArn] }),
          ...throughUrl('OperateApi', operateApi.fn),
        ],
      }),
      'OperatePolicy',
    );
    allowWildcards(
      operate,
      '<ExportBucket.Arn>/<ExportPrefix>/*',
      'arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/<AWS::StackName>-ExportFunctionSchedule-*',
      'arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/<AWS::StackName>-Schedule*',
    );

    const output = (id: string, value: string, description?: string) => new CfnOutput(this, id, { value, description });
    output('ExportBucketName', bucket.bucketName);
    output('HistoryTableName', table.tableName);
    output('EventBusName', bus.eventBusName);
    output('ExportFunctionName', exportFunction.functionName);
    output('IntegrationFunctionName', integrationFunction.functionName);
    output('ConfigurePolicyArn', configure.managedPolicyArn);
    output('DashboardName', dashboard.ref);
    output('OperatePolicyArn', operate.managedPolicyArn);
    output('ExportFunctionArn', exportFunction.functionArn, 'SLUICE_EXPORT_FUNCTION_ARN for `sluice orchestrations` with a DynamoDB history');
    output('OrchestrationRulePrefix', rulePrefix, 'SLUICE_RULE_PREFIX for `sluice orchestrations` with a DynamoDB history');
    output('ConfigureApiUrl', configureApi.url.url, 'The control API for the configure permission (SigV4-signed requests, service lambda)');
    output('OperateApiUrl', operateApi.url.url, 'The control API for the operate permission (SigV4-signed requests, service lambda)');
  }
}

/**
 * Calling a function's IAM-authenticated URL. Function URLs made since October 2025 also need
 * InvokeFunction; only through the URL, so no one can call the function directly with a
 * made-up caller in the event.
 */
function throughUrl(sid: string, fn: lambda.Function): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid,
      actions: ['lambda:InvokeFunctionUrl'],
      resources: [fn.functionArn],
      conditions: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
    }),
    new iam.PolicyStatement({
      sid: `${sid}ThroughUrl`,
      actions: ['lambda:InvokeFunction'],
      resources: [fn.functionArn],
      conditions: { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } },
    }),
  ];
}

/** Writing to the function's own log group: its ARN already ends in `:*` (its streams). */
function logStatement(group: logs.LogGroup): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'Logs',
    actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    resources: [group.logGroupArn],
  });
}

// Why each wildcard cdk-nag reports is as narrow as it can be. Keys: the finding's resource as
// cdk-nag prints it. Runs are new keys each time, so objects are granted by prefix; X-Ray has no
// resource-level permissions at all.
const WILDCARDS: Record<string, string> = {
  '*': 'X-Ray (xray:PutTraceSegments, xray:PutTelemetryRecords) has no resource-level permissions; tracing is on for every function.',
  '<ExportBucket.Arn>/<ExportPrefix>/*':
    'Each run writes new keys (<prefix>/<export>/<run>/...), so they are granted by the export prefix of the stack\'s own bucket.',
  '<ExportBucket.Arn>/<ExportPrefix>/<ExportName>/*':
    'The integration reads the runs of its one export; run keys are new each time, so they are granted by that export\'s prefix.',
  '<ExportBucket.Arn>/<ExportPrefix>/<ExportName>/*/failures/*':
    'The integration writes only failures files, inside the runs of its one export.',
  'arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/<AWS::StackName>-ExportFunctionSchedule-*':
    'Pausing and resuming schedules: only this stack\'s schedule rules, which CloudFormation names <stack>-<logical id>-<suffix>.',
  'arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/<AWS::StackName>-Schedule*':
    'Pausing and resuming schedules: only this stack\'s schedule rules (Schedule<Export>, written by sluice schedules).',
};

const ORCHESTRATION_RULES = 'arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/<AWS::StackName>-orch-*';
WILDCARDS[ORCHESTRATION_RULES] =
  'Orchestrations are rules the control API creates at run time; their names start with the stack\'s own <stack>-orch- prefix.';
const ALERT_WEBHOOKS = 'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:<AWS::StackName>-alerts-*';
WILDCARDS[ALERT_WEBHOOKS] =
  'Alert webhooks\' URLs are secrets named <stack>-alerts-*; the suffix is Secrets Manager\'s random one, and the name is the team\'s.';
WILDCARDS['<ExportBucket.Arn>/<ExportPrefix>/*/.sluice-write-check'] =
  'Activation writes and removes one probe object per export, under the stack\'s export prefix, and nothing else.';

/** Acknowledges cdk-nag's IAM5 findings on `scope` for these resources, each with its reason. */
function allowWildcards(scope: IConstruct, ...resources: string[]) {
  for (const resource of resources) {
    Validations.of(scope).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${resource}]`,
      reason: WILDCARDS[resource],
    });
  }
}
