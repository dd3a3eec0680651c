//! `channelgate demo`: the gateway beside the GitHub stand-in, on loopback.
//! Its banner goes to stdout; a reader that goes away (`| head`) does not
//! stop the demo.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::HostPort;
use crate::demo;
use crate::web as server;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; loopback only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A Pusher-protocol server (such as sockudo) the page may subscribe through.
    #[arg(long, value_name = "HOST:PORT", default_value = demo::DEFAULT_PUSHER_HOST)]
    pusher_host: HostPort,
}

pub fn run(
    Args {
        listen,
        pusher_host,
    }: Args,
) -> ExitCode {
    // The demo shows every decision, allows included.
    super::init_logging("info,channelgate::web::pusher=debug");
    super::on_runtime(|| async move {
        let demo = demo::start(listen, &pusher_host)
            .await
            .map_err(|e| e.to_string())?;
        let stop = server::shutdown_signal();
        super::print_out(&demo::banner(&demo.url, &pusher_host));
        tracing::info!(url = %demo.url, "channelgate demo ready");
        stop.await;
        demo.gateway.shutdown().await.map_err(|e| e.to_string())
    })
}
