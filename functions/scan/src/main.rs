//! The scan function: the table's DynamoDB stream invokes it with batches of writes, and it scans every manifest
//! pushed among them. Outside Lambda it scans the one batch it reads on stdin.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    berth::function::run_scan().await
}
