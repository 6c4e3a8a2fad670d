//! The join of `verify --records`, as a query over every capture's `legs.parquet`: each leg's
//! times put on the reference clock (joined with the clock offsets), the legs of one
//! connection key cut into sessions where the tuple falls silent for longer than the join's
//! slack (a reused port's connections apart), and the sessions ordered by when they end, as
//! the streaming join of `verify` hands its keys on. The legs of each session are then joined
//! into connections by the same code as `verify`'s ([`Joiner::join_key`]): by shared packets,
//! the client's ISN, or overlapping time. The SQL is in docs/records.md, for Spark or DuckDB.

use super::engine::{self, Engine};
use super::legs::{i64_column, LegColumns};
use super::RecordError;
use crate::flows::clock::ClockOffset;
use crate::flows::join::{JoinScratch, Joiner};
use crate::flows::packed::PackedLeg;
use crate::flows::{ConnKey, Connection};
use crate::topology::VantageId;
use std::path::PathBuf;

/// The query, with the clock offsets as a table of values.
pub fn sql(offsets: &[ClockOffset]) -> String {
    let offsets_table = if offsets.is_empty() {
        "SELECT CAST(NULL AS BIGINT) AS capture, CAST(NULL AS BIGINT) AS interface, \
         CAST(NULL AS BIGINT) AS offset_ns WHERE false"
            .to_string()
    } else {
        let rows: Vec<String> = offsets
            .iter()
            .map(|o| {
                format!(
                    "({}, {}, {})",
                    o.vantage.capture, o.vantage.interface, o.offset_ns
                )
            })
            .collect();
        format!(
            "SELECT column1 AS capture, column2 AS interface, column3 AS offset_ns FROM (VALUES {})",
            rows.join(", ")
        )
    };
    format!(
        "WITH offsets AS ({offsets_table}),
on_reference AS (
  SELECT l.capture, l.interface, l.proto, l.client_ip, l.client_port, l.vip_ip, l.vip_port,
         l.packed, l.packed_sum,
         l.first_ts_ns - COALESCE(o.offset_ns, 0) AS ref_first_ns,
         l.last_ts_ns - COALESCE(o.offset_ns, 0) AS ref_last_ns
  FROM legs l LEFT JOIN offsets o
    ON CAST(l.capture AS BIGINT) = o.capture AND CAST(l.interface AS BIGINT) = o.interface
),
after AS (
  SELECT *, MAX(ref_last_ns) OVER (
      PARTITION BY proto, client_ip, client_port, vip_ip, vip_port
      ORDER BY ref_first_ns, capture, interface
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_last_ns
  FROM on_reference
),
sessions AS (
  SELECT *, SUM(CASE WHEN before_last_ns IS NULL OR ref_first_ns > before_last_ns + {slack}
                     THEN 1 ELSE 0 END) OVER (
      PARTITION BY proto, client_ip, client_port, vip_ip, vip_port
      ORDER BY ref_first_ns, capture, interface
      ROWS UNBOUNDED PRECEDING) AS session
  FROM after
)
SELECT capture, interface, proto, client_ip, client_port, vip_ip, vip_port, packed, packed_sum,
       ref_first_ns, session,
       MAX(ref_last_ns) OVER (
         PARTITION BY proto, client_ip, client_port, vip_ip, vip_port, session) AS due_ns
FROM sessions
ORDER BY due_ns, proto, client_ip, client_port, vip_ip, vip_port, session, ref_first_ns,
         capture, interface",
        slack = crate::flows::stream::join_slack(offsets)
    )
}

/// One session's legs.
type Legs = Vec<(VantageId, PackedLeg)>;
type Session = (ConnKey, Legs);

/// Runs the join on `engine` over the legs files, handing every connection to `each` in the
/// order their sessions end (sessions ending at the same time in the order of their keys).
pub fn join_legs(
    engine: &Engine,
    legs_files: &[PathBuf],
    offsets: &[ClockOffset],
    joiner: &Joiner,
    each: &mut dyn FnMut(Connection),
) -> Result<(), RecordError> {
    let query = sql(offsets);
    let mut scratch = JoinScratch::default();
    let mut out = Vec::new();
    // Sessions ending at `due`, not joined yet: sorted by key once the next due time comes.
    let mut due_now: Option<i64> = None;
    let mut ending: Vec<Session> = Vec::new();
    // The session being read: its key, its number and its legs so far.
    let mut open: Option<(ConnKey, i64, Legs)> = None;
    let mut row = 0u64;
    let mut flush = |ending: &mut Vec<Session>, each: &mut dyn FnMut(Connection)| {
        ending.sort_by_key(|(k, _)| *k);
        for (key, legs) in ending.drain(..) {
            out.clear();
            joiner.join_key(
                key,
                legs.iter().map(|(v, l)| (*v, l)),
                &mut scratch,
                &mut out,
            );
            for c in out.drain(..) {
                each(c);
            }
        }
    };
    engine::run_query(
        engine,
        &[("legs", legs_files.to_vec())],
        &query,
        &mut |batch| {
            let batch = super::legs::plain(batch).map_err(|e| e.to_string())?;
            let cols = LegColumns::of(&batch).map_err(|e| e.to_string())?;
            let due = i64_column(&batch, "due_ns").map_err(|e| e.to_string())?;
            let session = i64_column(&batch, "session").map_err(|e| e.to_string())?;
            for i in 0..batch.num_rows() {
                row += 1;
                let (vantage, key, leg) = cols.leg(i).map_err(|e| {
                    format!("legs row {row} (capture #{}): {e}", cols_capture(&cols, i))
                })?;
                let (d, s) = (due.value(i), session.value(i));
                if let Some((k, sess, legs)) = &mut open {
                    if *k == key && *sess == s {
                        legs.push((vantage, leg));
                        continue;
                    }
                }
                if let Some((k, _, legs)) = open.take() {
                    ending.push((k, legs));
                }
                if due_now != Some(d) {
                    flush(&mut ending, each);
                    due_now = Some(d);
                }
                open = Some((key, s, vec![(vantage, leg)]));
            }
            Ok(())
        },
    )
    .map_err(|e| RecordError::Other(e.to_string()))?;
    if let Some((k, _, legs)) = open.take() {
        ending.push((k, legs));
    }
    flush(&mut ending, each);
    Ok(())
}

fn cols_capture(cols: &LegColumns, i: usize) -> u32 {
    cols.capture_of(i)
}
