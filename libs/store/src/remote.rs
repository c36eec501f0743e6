//! The Redis backend: state shared by several gateways. Keys are
//! `mailgate:NAMESPACE:KEY`; Redis expires them itself (SET ... PX).
//!
//! The server's address is resolved when the store is opened (before the
//! sandbox, which has no resolver files). One multiplexed connection is
//! opened on first use and shared; when a command fails the connection is
//! dropped and the next command connects again, so a Redis restart costs
//! the commands made while it was down, and nothing else.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
};
use tokio::sync::Mutex;

use crate::StoreError;

pub(crate) struct Remote {
    client: Client,
    /// The spec as configured, for messages.
    spec: String,
    timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl Remote {
    pub(crate) fn open(
        spec: String,
        host: &str,
        port: u16,
        db: i64,
        timeout: Duration,
    ) -> Result<Remote, StoreError> {
        let address: SocketAddr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| StoreError::Open {
                spec: spec.clone(),
                reason: format!("cannot resolve {host}"),
            })?;
        let open_error = |e: redis::RedisError| StoreError::Open {
            spec: spec.clone(),
            reason: e.to_string(),
        };
        let info = ConnectionAddr::Tcp(address.ip().to_string(), port)
            .into_connection_info()
            .map_err(open_error)?
            .set_redis_settings(
                RedisConnectionInfo::default()
                    .set_db(db)
                    .set_skip_set_lib_name(),
            );
        let client = Client::open(info).map_err(open_error)?;
        Ok(Remote {
            client,
            spec,
            timeout,
            connection: Mutex::new(None),
        })
    }

    fn failed(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Failed {
            spec: self.spec.clone(),
            reason: reason.to_string(),
        }
    }

    /// The shared connection, made on first use. Connecting happens outside
    /// the lock, so that while the server is unreachable every caller waits
    /// at most one timeout, not one per caller before it.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = self.connection.lock().await.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| self.failed(format!("no connection within {:?}", self.timeout)))?
        .map_err(|e| self.failed(e))?;
        Ok(self
            .connection
            .lock()
            .await
            .get_or_insert(connection)
            .clone())
    }

    /// Runs one command; on any failure the shared connection is dropped
    /// so that the next command starts afresh.
    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        let result = tokio::time::timeout(self.timeout, command.query_async::<T>(&mut connection))
            .await
            .map_err(|_| self.failed(format!("no answer within {:?}", self.timeout)))
            .and_then(|r| r.map_err(|e| self.failed(e)));
        if result.is_err() {
            *self.connection.lock().await = None;
        }
        result
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(redis::cmd("GET").arg(key).to_owned()).await
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis)
                .to_owned(),
        )
        .await
    }

    pub(crate) async fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.run::<i64>(redis::cmd("DEL").arg(key).to_owned())
            .await
            .map(drop)
    }
}
