#[tokio::main]
async fn main() {
    let code = helix::cli::main().await;
    // Exit here rather than by dropping the runtime, which waits for every blocking task and
    // drops the database (sled flushes on drop): either can hang on a failed disk, and a
    // stopping node must be gone within `helix::daemon::STOP_WITHIN`.
    std::process::exit(code);
}
