//! Logging, and what each request costs: the backend calls (S3, DynamoDB) it made, counted per request for its log
//! line, because on AWS calls are latency and money.

use std::{cell::RefCell, collections::BTreeMap};

tokio::task_local! {
    static CALLS: RefCell<Calls>;
}

/// The backend calls one request made.
#[derive(Debug, Default)]
pub struct Calls {
    /// Requests sent and answered, by operation: every attempt, since each is billed.
    pub sent: BTreeMap<String, u32>,
    /// What the request had signed with the process's credentials, for the tests that hold each function's IAM role
    /// to what it does.
    #[cfg(feature = "test-support")]
    pub signed: std::collections::BTreeSet<signed::Signed>,
}

/// Runs `request`, recording the backend calls made on its task. Counts roll up: a scope inside another (a request
/// inside a test that counts several) adds its calls to the outer one too.
pub async fn count_backend_calls<T>(request: impl Future<Output = T>) -> (T, Calls) {
    let (output, calls) = CALLS
        .scope(RefCell::new(Calls::default()), async {
            let output = request.await;
            (output, CALLS.with(RefCell::take))
        })
        .await;
    let _ = CALLS.try_with(|outer| {
        let mut outer = outer.borrow_mut();
        for (operation, count) in &calls.sent {
            *outer.sent.entry(operation.clone()).or_default() += count;
        }
    });
    (output, calls)
}

/// Records one call to operation `name` (built only when counted).
pub fn backend_call(name: impl FnOnce() -> String) {
    // Outside a counting scope (start-up, resource creation) there is nothing to count into.
    let _ = CALLS.try_with(|calls| *calls.borrow_mut().sent.entry(name()).or_default() += 1);
}

/// What requests had signed, gathered by function across the process: the IAM actions each function's role needs.
#[cfg(feature = "test-support")]
pub mod signed {
    use std::{
        collections::{BTreeMap, BTreeSet},
        sync::Mutex,
    };

    use crate::http::routes::Function;

    /// One operation a request had signed: sent, or presigned for a client to send (IAM authorises that request
    /// as if the process had sent it).
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Signed {
        /// `S3.GetObject`, `DynamoDB.Query`; each item of a transaction also as `DynamoDB.TransactWriteItems.Put`
        /// (`.Delete`, `.Update`, `.ConditionCheck`), since IAM authorises a transaction item by item.
        pub operation: String,
        /// The first segment of the S3 key operated on (`blobs`, `uploads`), which policies grant actions on.
        pub key_prefix: Option<String>,
        /// The same of a copy's source object, which is read.
        pub source_prefix: Option<String>,
    }

    static BY_FUNCTION: Mutex<BTreeMap<Function, BTreeSet<Signed>>> = Mutex::new(BTreeMap::new());

    /// Records an operation signed on the current request's task.
    pub fn record(operation: Signed) {
        let _ = super::CALLS.try_with(|calls| calls.borrow_mut().signed.insert(operation));
    }

    /// Adds what one request served by `function` had signed to the process's record.
    pub fn add(function: Function, signed: BTreeSet<Signed>) {
        BY_FUNCTION.lock().expect("no recorder panics").entry(function).or_default().extend(signed);
    }

    /// Everything each function had signed since the process started.
    pub fn by_function() -> BTreeMap<Function, BTreeSet<Signed>> {
        BY_FUNCTION.lock().expect("no recorder panics").clone()
    }
}

/// Logs to stderr with `BERTH_LOG` (or `RUST_LOG`) as the filter, `info` by default; JSON lines where logs are
/// collected (Lambda, `--log-json`).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("BERTH_LOG").or_else(|_| EnvFilter::try_from_default_env()).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files and log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_only_inside_the_scope_of_one_request() {
        backend_call(|| "S3.GetObject".into());
        let ((), counted) = count_backend_calls(async {
            backend_call(|| "S3.GetObject".into());
            backend_call(|| "DynamoDB.Query".into());
            backend_call(|| "S3.GetObject".into());
        })
        .await;
        assert_eq!(counted.sent, BTreeMap::from([("DynamoDB.Query".into(), 1), ("S3.GetObject".into(), 2)]));
    }
}
