//! What each request costs: the backend calls (S3, DynamoDB) it made, counted per request for its log line, because
//! on AWS calls are latency and money.

use std::{cell::RefCell, collections::BTreeMap};

tokio::task_local! {
    static CALLS: RefCell<BTreeMap<String, u32>>;
}

/// Runs `request`, counting the backend calls made on its task, by operation.
pub async fn count_backend_calls<T>(request: impl Future<Output = T>) -> (T, BTreeMap<String, u32>) {
    CALLS
        .scope(RefCell::new(BTreeMap::new()), async {
            let output = request.await;
            (output, CALLS.with(RefCell::take))
        })
        .await
}

/// Records one call to operation `name` (built only when counted).
pub fn backend_call(name: impl FnOnce() -> String) {
    // Outside a counting scope (start-up, resource creation) there is nothing to count into.
    let _ = CALLS.try_with(|calls| *calls.borrow_mut().entry(name()).or_default() += 1);
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
        assert_eq!(counted, BTreeMap::from([("DynamoDB.Query".into(), 1), ("S3.GetObject".into(), 2)]));
    }
}
