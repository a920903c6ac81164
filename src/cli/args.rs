//! The command line of the `kombu` tool: every command, option and `--help` text (clap derive).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{EXIT_ERROR, EXIT_TIMED_OUT, EXIT_USAGE};

const MAIN_AFTER_HELP: &str = "\
Brokers are named by URL; the scheme picks the transport (see `kombu transports`):
  memory://            in-process broker (only useful within one command, e.g. `kombu bench`)
  redis://HOST:6379/0  Redis, wire-compatible with Python Kombu (feature `redis`)
  amqp://USER:PASS@HOST:5672//  RabbitMQ (feature `amqp`)

Examples:
  kombu transports
  kombu declare queue redis://localhost:6379/0 tasks --exchange jobs --routing-key tasks
  kombu publish redis://localhost:6379/0 --exchange jobs --routing-key tasks '{\"n\": 1}'
  kombu consume redis://localhost:6379/0 --queue tasks --count 1 --timeout 5
  kombu bench memory:// -n 20000

Exit status: 0 success; 1 error (one line on stderr); 2 bad command line;
3 `consume` timed out before the messages it waited for arrived.";

/// One tool for any broker kombu-rs speaks: publish, consume, declare, delete, purge, list transports, bench.
#[derive(Debug, Parser)]
#[command(name = "kombu", version, after_help = MAIN_AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Load a transport plugin (a shared library) before running the command (repeatable; the paths in
    /// `KOMBU_PLUGINS` are loaded too).
    #[cfg(feature = "plugins")]
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    pub plugins: Vec<std::path::PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish a message (or several copies of it) to an exchange.
    #[command(after_help = PUBLISH_AFTER_HELP)]
    Publish(Box<PublishArgs>),
    /// Send Celery tasks and read their results.
    #[cfg(feature = "celery")]
    #[command(subcommand)]
    Celery(CeleryCommand),
    /// Take one message from a queue (declaring nothing), print it as JSON, and acknowledge or requeue it.
    #[command(after_help = GET_AFTER_HELP)]
    Get(GetArgs),
    /// Consume messages from a queue, printing one JSON object per message on stdout.
    #[command(after_help = CONSUME_AFTER_HELP)]
    Consume(Box<ConsumeArgs>),
    /// Declare an exchange, a queue or a binding.
    #[command(subcommand, after_help = DECLARE_AFTER_HELP)]
    Declare(DeclareCommand),
    /// Delete an exchange, a queue or a binding.
    #[command(subcommand, after_help = DELETE_AFTER_HELP)]
    Delete(DeleteCommand),
    /// Remove every ready message from a queue.
    #[command(after_help = PURGE_AFTER_HELP)]
    Purge(PurgeArgs),
    /// List the registered transports: aliases, origin (built in or plugin) and capabilities.
    #[command(after_help = TRANSPORTS_AFTER_HELP)]
    Transports(TransportsArgs),
    /// Run the BENCH.md workload on a broker and print publish and consume rates.
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchArgs),
}

const PUBLISH_AFTER_HELP: &str = "\
The exchange (and --queue) is checked first and declared only if it does not exist (type --type,
durable unless --transient-exchange), so an exchange or queue another program declared, with other
durability or arguments, is used as it is; flags such as --transient-exchange or --transient declare
it as they say. --no-declare skips all of this. A message that no queue is bound to receive is dropped by the broker: declare the queue
first (`kombu declare queue`), or pass --queue to declare and bind it here.

The body is taken as given: with --serializer json (the default) it must be valid JSON; text must be
UTF-8; raw is any bytes. `-` reads the body from stdin.

Examples:
  kombu publish redis://localhost:6379/0 --exchange jobs --routing-key tasks '{\"n\": 1}'
  kombu publish amqp://guest:guest@localhost:5672// -e logs -t topic -k app.error --serializer text 'disk full'
  echo '{\"n\": 2}' | kombu publish redis://localhost:6379/0 -e jobs -k tasks --queue tasks -
  kombu publish redis://localhost:6379/0 -e jobs -k tasks --header trace=abc --header-json retries=3 \\
      --priority 5 --count 10 '{}'";

const CONSUME_AFTER_HELP: &str = "\
Each message is printed as one line of JSON:
  {\"body\": \"...\", \"body_encoding\": \"text\"|\"base64\", \"content_type\": ..., \"content_encoding\": ...,
   \"headers\": {...}, \"properties\": {\"delivery_mode\": 2, \"priority\": 5, ...},
   \"delivery_info\": {\"exchange\": ..., \"routing_key\": ..., \"redelivered\": false, \"delivery_tag\": ...,
   \"consumer_tag\": ...}}
The body is shown decompressed; it is text when it is valid UTF-8, base64 otherwise.

A message is acknowledged after its line is written (at least once); with --no-ack it is acknowledged
as it arrives, before it is printed (at most once). Messages received beyond --count go back to the queue.

The queue (with --exchange, also the exchange) is checked first and declared only if it does not
exist, so a queue another program declared, with other durability or arguments, is consumed as it is;
queue flags (--transient, --auto-delete, --max-priority, --message-ttl) declare it as they say. With
--exchange the binding is made. With --passive it must already exist and nothing is declared (on Redis,
as in Python Kombu, a queue exists only while it holds messages).

Exit status: 0 when --count messages were printed (or, without --count, when at least one was
printed before the timeout); 3 when --timeout passed first; 1 on an error; 2 on a bad command line.

Examples:
  kombu consume redis://localhost:6379/0 --queue tasks --count 1 --timeout 5
  kombu consume amqp://guest:guest@localhost:5672// -q logs -e logs -t topic -k 'app.#'
  kombu consume redis://localhost:6379/0 -q tasks --timeout 2 | jq -r .body";

const DECLARE_AFTER_HELP: &str = "\
Examples:
  kombu declare exchange redis://localhost:6379/0 logs --type topic
  kombu declare queue amqp://guest:guest@localhost:5672// tasks --exchange jobs --routing-key tasks --max-priority 9
  kombu declare binding redis://localhost:6379/0 --queue tasks --exchange jobs --routing-key urgent";

const DELETE_AFTER_HELP: &str = "\
Examples:
  kombu delete queue redis://localhost:6379/0 tasks
  kombu delete exchange amqp://guest:guest@localhost:5672// logs --if-unused
  kombu delete binding redis://localhost:6379/0 --queue tasks --exchange jobs --routing-key urgent";

const PURGE_AFTER_HELP: &str = "\
Prints how many messages were removed. Messages delivered to a consumer and not yet acknowledged stay.

Examples:
  kombu purge redis://localhost:6379/0 tasks
  kombu purge amqp://guest:guest@localhost:5672// tasks";

const TRANSPORTS_AFTER_HELP: &str = "\
Backends are compiled in by the Cargo features of the `kombu` crate (memory, redis, amqp); a scheme
that is not compiled in is refused with the name of the feature to enable. With the `plugins` feature,
third-party transports are loaded from the shared libraries listed in `KOMBU_PLUGINS` (separated like
PATH) and given with --plugin.

Examples:
  kombu transports
  kombu transports --json | jq '.[].aliases'";

const BENCH_AFTER_HELP: &str = "\
The workload of BENCH.md, the same as the Python Kombu anchor: declare a direct exchange `bench_ex` and
a queue `bench_q` (or the names given) bound with `bench`, both transient, purge the queue, publish N JSON messages
{\"i\": i, \"p\": \"x\" * SIZE} one publish each, then consume all N with a consumer that acks each one
(prefetch 100). A progress bar is drawn on stderr when it is a terminal.

Examples:
  kombu bench memory://
  kombu bench redis://localhost:6379/0 -n 20000 --size 100
  kombu bench amqp://guest:guest@localhost:5672// --json
  kombu bench redis://localhost:6379/0 --async --in-flight 64
  kombu bench redis://localhost:6379/0 --exchange my_bench_ex --queue my_bench_q";

/// How a message body given on the command line is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SerializerArg {
    /// `application/json`, `utf-8`: the body must be valid JSON.
    Json,
    /// `text/plain`, `utf-8`: the body must be UTF-8.
    Text,
    /// `application/data`, `binary`: any bytes.
    Raw,
    /// `application/x-msgpack`, `binary`: the body is given as JSON and sent as MessagePack.
    Msgpack,
    /// `application/x-yaml`, `utf-8`: the body is given as JSON and sent as YAML.
    Yaml,
}

/// Exchange options shared by several commands.
#[derive(Debug, Clone, Args)]
pub struct ExchangeOpts {
    /// Exchange type: direct, topic, fanout or headers.
    #[arg(short = 't', long = "type", value_name = "TYPE", default_value = "direct", value_parser = parse_kind)]
    pub kind: kombu_core::ExchangeKind,
    /// Declare the exchange as transient (not durable).
    #[arg(long)]
    pub transient_exchange: bool,
}

/// Queue options shared by `declare queue`, `publish --queue` and `consume`.
#[derive(Debug, Clone, Args)]
pub struct QueueOpts {
    /// Declare the queue as transient (not durable).
    #[arg(long)]
    pub transient: bool,
    /// Delete the queue when its last consumer goes.
    #[arg(long)]
    pub auto_delete: bool,
    /// Enable priorities up to N (AMQP `x-max-priority`).
    #[arg(long, value_name = "N")]
    pub max_priority: Option<u8>,
    /// Drop messages that waited longer than SECS in the queue (AMQP `x-message-ttl`).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub message_ttl: Option<Duration>,
}

impl QueueOpts {
    /// Whether any of them was given: then the queue is declared as they say, even if it exists.
    pub fn asked(&self) -> bool {
        self.transient || self.auto_delete || self.max_priority.is_some() || self.message_ttl.is_some()
    }
}

/// `kombu publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Broker URL (or a failover list `url1;url2`).
    pub url: String,
    /// The body, or `-` to read it from stdin.
    pub body: String,
    /// Exchange to publish to; the default exchange (empty name) routes to the queue named by the routing key.
    #[arg(short, long, default_value = "")]
    pub exchange: String,
    #[command(flatten)]
    pub exchange_opts: ExchangeOpts,
    /// Routing key.
    #[arg(short = 'k', long, default_value = "")]
    pub routing_key: String,
    /// Do not declare the exchange (or --queue); it must exist.
    #[arg(long)]
    pub no_declare: bool,
    /// Also declare this queue, bound to the exchange with the routing key, before publishing.
    #[arg(short, long, value_name = "QUEUE")]
    pub queue: Option<String>,
    #[command(flatten)]
    pub queue_opts: QueueOpts,
    /// A string header KEY=VALUE (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// A header whose value is JSON, KEY=JSON (repeatable), e.g. `retries=3` or `tags=[\"a\"]`.
    #[arg(long = "header-json", value_name = "KEY=JSON")]
    pub json_headers: Vec<String>,
    /// Message priority (0-255; brokers clamp it to the queue's maximum).
    #[arg(short, long, value_name = "N")]
    pub priority: Option<u8>,
    /// How to encode the body.
    #[arg(short, long, value_enum, default_value = "json")]
    pub serializer: SerializerArg,
    /// Content type to send instead of the serializer's.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Content encoding to send instead of the serializer's.
    #[arg(long, value_name = "ENCODING")]
    pub content_encoding: Option<String>,
    /// Compress the body: zlib (alias gzip), bzip2, lzma (alias xz), brotli or zstd, as Kombu names them.
    #[arg(long, value_name = "NAME")]
    pub compression: Option<String>,
    /// Correlation id property.
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
    /// Reply-to property.
    #[arg(long, value_name = "QUEUE")]
    pub reply_to: Option<String>,
    /// Message id property.
    #[arg(long, value_name = "ID")]
    pub message_id: Option<String>,
    /// Drop the message if it is not delivered within SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub expiration: Option<Duration>,
    /// Send as transient (delivery mode 1) instead of persistent.
    #[arg(long)]
    pub transient_message: bool,
    /// Wait up to SECS for the broker to confirm each message, where the backend can (AMQP publisher
    /// confirms), so that "published" means the broker has it.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub confirm_timeout: Duration,
    /// Do not wait for confirms (faster; a message can be lost if the connection fails).
    #[arg(long)]
    pub no_confirm: bool,
    /// Publish the message this many times.
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
}

/// `kombu get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Broker URL (or a failover list `url1;url2`).
    pub url: String,
    /// Queue to take the message from; it is not declared.
    #[arg(short, long)]
    pub queue: String,
    /// Put the message back on the queue after printing it, instead of acknowledging it.
    #[arg(long)]
    pub requeue: bool,
    /// Wait up to SECS seconds for a message (default: do not wait; exit status 3 if the queue is empty).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Print JSON (and msgpack, yaml) bodies as JSON values instead of text.
    #[arg(long)]
    pub decode_json: bool,
}

const GET_AFTER_HELP: &str = "\
The message is printed as `kombu consume` prints it, then acknowledged (or, with --requeue, put back).
Nothing is declared: the queue must exist (on Redis an empty queue does not exist, and reads as empty).

Exit status: 0 when a message was printed; 3 when the queue stayed empty; 1 on an error.

Examples:
  kombu get redis://localhost:6379/0 -q tasks
  kombu get amqp://guest:guest@localhost:5672// -q dead-letters --requeue --decode-json --timeout 5";

/// `kombu consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Broker URL (or a failover list `url1;url2`).
    pub url: String,
    /// Queue to consume from.
    #[arg(short, long)]
    pub queue: String,
    /// Bind the queue to this exchange (declared with --type) before consuming.
    #[arg(short, long)]
    pub exchange: Option<String>,
    #[command(flatten)]
    pub exchange_opts: ExchangeOpts,
    /// Binding key for --exchange.
    #[arg(short = 'k', long, default_value = "")]
    pub routing_key: String,
    #[command(flatten)]
    pub queue_opts: QueueOpts,
    /// Only check that the queue exists; declare nothing.
    #[arg(long, conflicts_with = "exchange")]
    pub passive: bool,
    /// Stop after N messages (default: no limit).
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Give up after SECS seconds in all (exit status 3 if the messages waited for did not all arrive).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Acknowledge each message as it arrives, before printing it (at most once).
    #[arg(long)]
    pub no_ack: bool,
    /// Print JSON bodies as JSON values (`"body_encoding": "json"`) instead of text.
    #[arg(long)]
    pub decode_json: bool,
}

/// `kombu declare ...`.
#[derive(Debug, Subcommand)]
pub enum DeclareCommand {
    /// Declare an exchange.
    #[command(after_help = DECLARE_AFTER_HELP)]
    Exchange(DeclareExchangeArgs),
    /// Declare a queue (and, with --exchange, its exchange and binding); prints its message count.
    #[command(after_help = DECLARE_AFTER_HELP)]
    Queue(DeclareQueueArgs),
    /// Bind a queue to an exchange (both must exist).
    #[command(after_help = DECLARE_AFTER_HELP)]
    Binding(BindingArgs),
}

/// `kombu declare exchange`.
#[derive(Debug, Args)]
pub struct DeclareExchangeArgs {
    /// Broker URL.
    pub url: String,
    /// Exchange name.
    pub name: String,
    #[command(flatten)]
    pub exchange_opts: ExchangeOpts,
    /// Delete the exchange when its last queue is unbound.
    #[arg(long)]
    pub auto_delete: bool,
    /// Only check that the exchange exists.
    #[arg(long)]
    pub passive: bool,
}

/// `kombu declare queue`.
#[derive(Debug, Args)]
pub struct DeclareQueueArgs {
    /// Broker URL.
    pub url: String,
    /// Queue name.
    pub name: String,
    /// Bind the queue to this exchange (declared with --type).
    #[arg(short, long)]
    pub exchange: Option<String>,
    #[command(flatten)]
    pub exchange_opts: ExchangeOpts,
    /// Binding key for --exchange.
    #[arg(short = 'k', long, default_value = "")]
    pub routing_key: String,
    #[command(flatten)]
    pub queue_opts: QueueOpts,
    /// Only check that the queue exists (and print its message count).
    #[arg(long, conflicts_with = "exchange")]
    pub passive: bool,
}

/// A binding, for `declare binding` and `delete binding`.
#[derive(Debug, Args)]
pub struct BindingArgs {
    /// Broker URL.
    pub url: String,
    /// The queue.
    #[arg(short, long)]
    pub queue: String,
    /// The exchange.
    #[arg(short, long)]
    pub exchange: String,
    /// Binding key.
    #[arg(short = 'k', long, default_value = "")]
    pub routing_key: String,
    /// A string binding argument KEY=VALUE (repeatable; for headers exchanges: the headers to match, and
    /// `x-match=any` or `x-match=all`).
    #[arg(long = "argument", value_name = "KEY=VALUE")]
    pub arguments: Vec<String>,
    /// A binding argument whose value is JSON, KEY=JSON (repeatable).
    #[arg(long = "argument-json", value_name = "KEY=JSON")]
    pub json_arguments: Vec<String>,
}

/// `kombu delete ...`.
#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Delete an exchange.
    #[command(after_help = DELETE_AFTER_HELP)]
    Exchange(DeleteExchangeArgs),
    /// Delete a queue and its bindings; prints how many messages it held.
    #[command(after_help = DELETE_AFTER_HELP)]
    Queue(DeleteQueueArgs),
    /// Remove a binding.
    #[command(after_help = DELETE_AFTER_HELP)]
    Binding(BindingArgs),
}

/// `kombu delete exchange`.
#[derive(Debug, Args)]
pub struct DeleteExchangeArgs {
    /// Broker URL.
    pub url: String,
    /// Exchange name.
    pub name: String,
    /// Only if no queue is bound to it.
    #[arg(long)]
    pub if_unused: bool,
}

/// `kombu delete queue`.
#[derive(Debug, Args)]
pub struct DeleteQueueArgs {
    /// Broker URL.
    pub url: String,
    /// Queue name.
    pub name: String,
    /// Only if it has no consumers.
    #[arg(long)]
    pub if_unused: bool,
    /// Only if it holds no messages.
    #[arg(long)]
    pub if_empty: bool,
}

/// `kombu purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Broker URL.
    pub url: String,
    /// Queue name.
    pub queue: String,
}

/// `kombu transports`.
#[derive(Debug, Args)]
pub struct TransportsArgs {
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `kombu bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Broker URL.
    pub url: String,
    /// Number of messages.
    #[arg(short = 'n', long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Size of the `p` field of each message, in bytes (at most 64 MiB).
    #[arg(long, default_value_t = 100, value_parser = super::bench::parse_body_size)]
    pub size: usize,
    /// Name of the exchange (another name keeps runs on one broker apart).
    #[arg(long, default_value = "bench_ex")]
    pub exchange: String,
    /// Name of the queue (with `--queues N`, the prefix of theirs).
    #[arg(long, default_value = "bench_q")]
    pub queue: String,
    /// Spread the messages over this many queues (`<queue>-0` …, bound with keys `bench-0` …, in turn)
    /// consumed by one consumer of them all; they are deleted at the end.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub queues: u16,
    /// Longest wait for the next message while consuming, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Also time a batched publish of the N messages (`Producer::send_batch`, pipelined where the
    /// backend can), in batches of this many, three times (purging the queue after each), and report
    /// the median.
    #[arg(long, value_name = "SIZE", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Acknowledge with `Message::ack_deferred` (batched, about one round trip late) instead of `ack`
    /// (done when it returns, as Python Kombu's).
    #[arg(long)]
    pub ack_deferred: bool,
    /// Run the workload through the async API (`kombu::aio`) on a tokio runtime: each publish and each
    /// ack awaited (needs the `tokio` feature).
    #[arg(long = "async", conflicts_with_all = ["batch", "ack_deferred"])]
    pub asynchronous: bool,
    /// With --async, also time confirmed publishes of the N messages with this many `send` futures of one
    /// producer in flight at a time (then purge them).
    #[arg(long, value_name = "N", requires = "asynchronous", value_parser = clap::value_parser!(u16).range(1..))]
    pub in_flight: Option<u16>,
    /// Also time confirmed publishes of the N messages from this many threads (tasks with --async), each
    /// awaiting its own sends: once sharing one connection, once with a connection each (then purge them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub producers: Option<u16>,
    /// Consume with this many consumers, a connection each, in a thread (task with --async) each.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub consumers: u16,
    /// Also measure latency (p50, p99, max) with messages published at this rate a second for 2 s.
    #[arg(long, value_name = "PER_SEC", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: Option<u32>,
    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_kind(s: &str) -> Result<kombu_core::ExchangeKind, String> {
    s.parse().map_err(|e: kombu_core::Error| e.message().to_owned())
}

/// Seconds as a non-negative, finite decimal number.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is not a non-negative number of seconds"))
}

// The exit codes are documented in the help texts above; keep them in step.
const _: () = assert!(EXIT_ERROR == 1 && EXIT_USAGE == 2 && EXIT_TIMED_OUT == 3);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn exchange_type_errors_name_the_choices() {
        let err = Cli::try_parse_from(["kombu", "consume", "memory://", "-q", "q", "-t", "fan"]).unwrap_err();
        assert!(err.to_string().contains("expected direct, topic, fanout or headers"), "{err}");
    }
}

/// `kombu celery`.
#[cfg(feature = "celery")]
#[derive(Debug, Subcommand)]
pub enum CeleryCommand {
    /// Send a task (protocol 2, as Celery's `apply_async`) and print its id, or with --wait its result.
    #[command(after_help = CELERY_SEND_AFTER_HELP)]
    Send(Box<CelerySendArgs>),
    /// Print the result of a task from Celery's Redis result backend (`celery-task-meta-<id>`).
    #[cfg(feature = "redis")]
    Result(CeleryResultArgs),
}

/// `kombu celery send`.
#[cfg(feature = "celery")]
#[derive(Debug, Args)]
pub struct CelerySendArgs {
    /// Broker URL (the worker's `broker_url`).
    pub url: String,
    /// The task's name, as the worker registered it (`tasks.add`).
    pub task: String,
    /// Positional arguments, each JSON (`2`, `"x"`, `[1,2]`) or else taken as a string.
    pub args: Vec<String>,
    /// Keyword arguments, a JSON object.
    #[arg(long, value_name = "JSON")]
    pub kwargs: Option<String>,
    /// The queue (also exchange and routing key) the worker reads.
    #[arg(short, long, default_value = "celery")]
    pub queue: String,
    /// The task id (default: a new UUID).
    #[arg(long)]
    pub id: Option<String>,
    /// Run no earlier than SECS from now.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub countdown: Option<Duration>,
    /// Drop the task if it has not started SECS from now.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub expires: Option<Duration>,
    /// Message priority (0-255; Celery on Redis uses 0-9).
    #[arg(short, long, value_name = "N")]
    pub priority: Option<u8>,
    /// Wait up to SECS for the result and print it; exit status 3 if none came.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub wait: Option<Duration>,
    /// Where --wait reads the result: `rpc://` (replies to this client; the worker's `result_backend` must be
    /// `rpc://`) or the Redis result backend's URL (with the `redis` feature).
    #[arg(long, value_name = "URL", default_value = "rpc://", requires = "wait")]
    pub backend: String,
}

/// `kombu celery result`.
#[cfg(all(feature = "celery", feature = "redis"))]
#[derive(Debug, Args)]
pub struct CeleryResultArgs {
    /// The Redis result backend's URL (the worker's `result_backend`).
    pub backend: String,
    /// The task id.
    pub id: String,
    /// Wait up to SECS for a final result (default: print what is stored now; exit status 3 if nothing).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
}

#[cfg(feature = "celery")]
const CELERY_SEND_AFTER_HELP: &str = "\
Arguments are JSON when they parse as JSON, strings otherwise. Prints the task id; with --wait, one line of
JSON: {\"id\", \"state\", \"result\", \"traceback\", \"date_done\"}.

Examples:
  kombu celery send redis://localhost:6379/0 tasks.add 2 3
  kombu celery send amqp://guest:guest@localhost:5672// tasks.add 2 3 --countdown 5 --wait 30
  kombu celery send redis://localhost:6379/0 tasks.mail --kwargs '{\"to\": \"ops\"}' -q mail -p 5
  kombu celery result redis://localhost:6379/1 5f0c6a8e-...";
