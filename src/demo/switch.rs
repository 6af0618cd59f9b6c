//! The demo's commune access switch: a small SNMP agent (async-snmp's) on 127.0.0.1
//! answering v2c with ifTable/ifXTable for three ports — the uplink carrying a daytime
//! load that swells and ebbs, the other two lightly used — and `sysUpTime`. Its counters
//! are computed from the time of each request, so every read is fresh.

use std::sync::Arc;
use std::time::Instant;

use async_snmp::agent::Agent;
use async_snmp::handler::{BoxFuture, GetNextResult, GetResult, HandlerResult, MibHandler, OidTable, RequestContext};
use async_snmp::{Oid, Value, VarBind};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

/// The ports: name, alias, average load in bits per second.
const PORTS: [(&str, &str, f64); 3] = [
    ("ge-0/0/1", "uplink to the province core", 40e6),
    ("ge-0/0/2", "one-stop office", 4e6),
    ("ge-0/0/3", "commune hall Wi-Fi", 1.5e6),
];
/// Every port runs at 1 Gbit/s.
const SPEED_MBPS: u32 = 1000;

/// The running agent: its address, stopped with the demo.
pub struct DemoSwitch {
    pub address: std::net::SocketAddr,
    pub community: String,
    stop: CancellationToken,
}

impl DemoSwitch {
    /// Starts the agent on an ephemeral loopback port.
    pub async fn start(community: String) -> std::io::Result<DemoSwitch> {
        let stop = CancellationToken::new();
        let handler = Arc::new(Tables { started: Instant::now() });
        let agent = Agent::builder()
            .bind("127.0.0.1:0")
            .community(community.as_bytes().to_vec())
            .handler(Oid::parse("1.3.6.1.2.1").map_err(std::io::Error::other)?, handler)
            .allow_all_access()
            .cancellation_token(stop.clone())
            .build()
            .await
            .map_err(std::io::Error::other)?;
        let address = agent.local_addr();
        tokio::spawn(async move {
            if let Err(e) = agent.run().await {
                tracing::warn!(error = %e, "the demo switch stopped");
            }
        });
        Ok(DemoSwitch { address, community, stop })
    }

    /// Stops the agent.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// The switch's tables, as of each request.
struct Tables {
    started: Instant,
}

impl Tables {
    fn now(&self) -> OidTable<Value> {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut table: Vec<(Oid, Value)> =
            vec![(oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), Value::TimeTicks((seconds * 100.0) as u32))];
        for (i, (name, alias, load)) in PORTS.iter().enumerate() {
            let index = i as u32 + 1;
            // Octets so far at a load of `load × (1 + ½ sin ωt)` (a ten-minute swell): the
            // integral of that rate.
            let omega = std::f64::consts::TAU / 600.0;
            let swell = 0.5 * (1.0 - (seconds * omega).cos()) / omega;
            let octets_in = (load * (seconds + swell) / 8.0) as u64;
            let octets_out = octets_in / 3;
            let column = |table: &[u32], col: u32| {
                let mut arcs = table.to_vec();
                arcs.extend([col, index]);
                oid(&arcs)
            };
            let if_table = [1, 3, 6, 1, 2, 1, 2, 2, 1];
            let if_x_table = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1];
            table.extend([
                (column(&if_table, 1), Value::Integer(index as i32)),
                (column(&if_table, 2), Value::OctetString(Bytes::from(name.to_string()))),
                (column(&if_table, 3), Value::Integer(6)),
                (column(&if_table, 5), Value::Gauge32(SPEED_MBPS * 1_000_000)),
                (column(&if_table, 7), Value::Integer(1)),
                (column(&if_table, 8), Value::Integer(1)),
                (column(&if_table, 10), Value::Counter32(octets_in as u32)),
                (column(&if_table, 13), Value::Counter32(0)),
                (column(&if_table, 14), Value::Counter32(0)),
                (column(&if_table, 16), Value::Counter32(octets_out as u32)),
                (column(&if_table, 19), Value::Counter32(0)),
                (column(&if_table, 20), Value::Counter32(0)),
                (column(&if_x_table, 1), Value::OctetString(Bytes::from(name.to_string()))),
                (column(&if_x_table, 6), Value::Counter64(octets_in)),
                (column(&if_x_table, 10), Value::Counter64(octets_out)),
                (column(&if_x_table, 15), Value::Gauge32(SPEED_MBPS)),
                (column(&if_x_table, 18), Value::OctetString(Bytes::from(alias.to_string()))),
            ]);
        }
        table.into_iter().collect()
    }
}

fn oid(arcs: &[u32]) -> Oid {
    Oid::from_slice(arcs)
}

impl MibHandler for Tables {
    fn get<'a>(&'a self, _ctx: &'a RequestContext, oid: &'a Oid) -> BoxFuture<'a, HandlerResult<GetResult>> {
        Box::pin(
            async move { Ok(self.now().get(oid).cloned().map(GetResult::Value).unwrap_or(GetResult::NoSuchObject)) },
        )
    }

    fn get_next<'a>(&'a self, _ctx: &'a RequestContext, oid: &'a Oid) -> BoxFuture<'a, HandlerResult<GetNextResult>> {
        Box::pin(async move {
            let table = self.now();
            Ok(table
                .get_next(oid)
                .map(|(next, value)| GetNextResult::Value(VarBind::new(next.clone(), value.clone())))
                .unwrap_or(GetNextResult::EndOfMibView))
        })
    }
}
