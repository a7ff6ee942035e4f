use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = helix::cli::Cli::parse();
    if let Err(failure) = helix::cli::run(cli).await {
        eprintln!("error: {}", failure.message);
        std::process::exit(failure.code);
    }
}
