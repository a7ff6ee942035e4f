//! This node's certificate while it runs: the TLS configurations of its two ports follow
//! it, and it is renewed (a new key pair, signed by the leader) when two thirds of its life
//! have passed, long before it expires.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::sync::watch;

use super::files::DataDir;
use crate::cluster::Cluster;
use crate::config::ApiTls;
use crate::peer::RenewRequest;
use crate::tls::{NodeIdentity, NodeKey, TlsError};

type ServerConfig = Arc<rustls::ServerConfig>;

/// A TLS configuration made from the node's identity, remade whenever the identity changes
/// (until `shutdown`).
pub fn follow(
    identity: watch::Receiver<Arc<NodeIdentity>>,
    make: fn(&NodeIdentity) -> Result<ServerConfig, TlsError>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<watch::Receiver<ServerConfig>> {
    let first = make(&identity.borrow())?;
    let (tx, rx) = watch::channel(first);
    let mut identity = identity;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = identity.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            let next = make(&identity.borrow_and_update());
            match next {
                Ok(config) => {
                    let _ = tx.send(config);
                }
                Err(e) => tracing::error!(error = %e, "cannot use the renewed certificate"),
            }
        }
    });
    Ok(rx)
}

/// The API port's TLS configuration, if it has one.
pub fn api_tls(
    mode: &ApiTls,
    identity: &watch::Receiver<Arc<NodeIdentity>>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Option<watch::Receiver<ServerConfig>>> {
    match mode {
        ApiTls::Plain => Ok(None),
        ApiTls::Insecure => {
            tracing::warn!(
                "serving the API over plain HTTP on a non-loopback address (--insecure-http): \
                 API keys and tokens cross the network in clear"
            );
            Ok(None)
        }
        ApiTls::ClusterCertificate => Ok(Some(follow(
            identity.clone(),
            api_config_from_identity,
            shutdown.clone(),
        )?)),
        ApiTls::OwnCertificate { cert, key } => {
            let chain = std::fs::read_to_string(cert)
                .with_context(|| format!("cannot read the API certificate {}", cert.display()))?;
            let key = std::fs::read_to_string(key)
                .with_context(|| format!("cannot read the API key {}", key.display()))?;
            let config = crate::tls::api_server_config(&chain, &SecretString::from(key))
                .with_context(|| format!("cannot use the API certificate {}", cert.display()))?;
            Ok(Some(watch::channel(config).1))
        }
    }
}

/// The node's certificate followed by the CA's, so clients that trust the CA can verify it.
fn api_config_from_identity(identity: &NodeIdentity) -> Result<ServerConfig, TlsError> {
    let chain = format!(
        "{}\n{}",
        identity.cert_pem().trim(),
        identity.ca_pem().trim()
    );
    crate::tls::api_server_config(&chain, identity.key_pem())
}

/// Renew the certificate when two thirds of its life have passed; on failure retry every
/// few seconds (the old certificate keeps working until it expires).
pub async fn keep_renewed(
    cluster: Cluster,
    dir: DataDir,
    identity: watch::Sender<Arc<NodeIdentity>>,
    names: Vec<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retry = false;
    loop {
        let info = identity.borrow().info().clone();
        let wait = if retry {
            Duration::from_secs(5)
        } else {
            Duration::from_millis((info.renew_at_ms() - crate::time::now_ms()).max(0) as u64)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        match renew(&cluster, &dir, &identity, &names).await {
            Ok(renewed) => {
                tracing::info!(
                    serial = %renewed.info().serial,
                    valid_until = %crate::time::rfc3339(renewed.info().not_after_ms),
                    "renewed this node's certificate"
                );
                let _ = identity.send(Arc::new(renewed));
                retry = false;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not renew this node's certificate yet");
                retry = true;
            }
        }
    }
}

async fn renew(
    cluster: &Cluster,
    dir: &DataDir,
    identity: &watch::Sender<Arc<NodeIdentity>>,
    names: &[String],
) -> anyhow::Result<NodeIdentity> {
    let key = NodeKey::generate()?;
    let cert_pem = cluster
        .renew_certificate(RenewRequest {
            csr_pem: key.csr_pem()?,
            names: names.to_vec(),
        })
        .await?;
    let ca_pem = identity.borrow().ca_pem().to_string();
    let renewed = NodeIdentity::new(&ca_pem, &cert_pem, key.key_pem())?;
    dir.keep_identity(&renewed)?;
    Ok(renewed)
}
