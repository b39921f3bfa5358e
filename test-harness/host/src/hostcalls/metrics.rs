//! Metrics: define, increment, record, get, with Envoy's rules.
//!
//! Ids carry the metric type in their low two bits, as in Envoy, and name a
//! process-wide stat: two VMs defining the same name share one value.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_string, write_u32, write_u64};
use crate::state::HostState;
use crate::types::{MetricType, Status};
use crate::world::Metric;

const TYPE_MASK: u32 = 0b11;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut caller: Ctx<'_>, metric_type: u32, name: u32, name_size: u32, return_id: u32| {
            finish((|| {
                let kind = MetricType::from_abi(metric_type).ok_or(Status::BadArgument)?;
                let name = read_string(&caller, name, name_size)?;
                let id = define(caller.data_mut(), kind, &name)?;
                write_u32(&mut caller, return_id, id)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |caller: Ctx<'_>, id: u32, offset: i64| {
            finish(update(caller.data(), id, |metric| match metric {
                // Envoy: a counter only goes up.
                Metric::Counter(_) if offset <= 0 => Err(Status::BadArgument),
                Metric::Counter(value) => {
                    *value = value.saturating_add(offset.unsigned_abs());
                    Ok(())
                }
                Metric::Gauge(value) => {
                    *value = value.saturating_add(offset);
                    Ok(())
                }
                Metric::Histogram(_) => Err(Status::BadArgument),
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |caller: Ctx<'_>, id: u32, value: u64| {
            finish(update(caller.data(), id, |metric| {
                match metric {
                    Metric::Counter(current) => *current = current.saturating_add(value),
                    Metric::Gauge(current) => *current = value as i64,
                    Metric::Histogram(values) => values.push(value),
                }
                Ok(())
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut caller: Ctx<'_>, id: u32, return_value: u32| {
            finish((|| {
                let mut read = 0u64;
                update(caller.data(), id, |metric| {
                    read = match metric {
                        Metric::Counter(value) => *value,
                        Metric::Gauge(value) => *value as u64,
                        Metric::Histogram(_) => return Err(Status::BadArgument),
                    };
                    Ok(())
                })?;
                write_u64(&mut caller, return_value, read)
            })())
        },
    )?;
    Ok(())
}

fn define(state: &mut HostState, kind: MetricType, name: &str) -> Result<u32, Status> {
    if name.is_empty() {
        return Err(Status::BadArgument);
    }
    {
        let mut stats = state.world.stats();
        let metric = stats
            .metrics
            .entry(name.to_string())
            .or_insert_with(|| Metric::new(kind));
        if metric.kind() != kind {
            return Err(Status::BadArgument);
        }
    }
    let vm = &mut state.vm;
    if let Some((id, _)) = vm.metric_ids.iter().find(|(_, n)| n.as_str() == name) {
        return Ok(*id);
    }
    let type_bits = match kind {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Histogram => 2,
    };
    let id = (vm.next_metric_id << 2) | type_bits;
    vm.next_metric_id += 1;
    vm.metric_ids.insert(id, name.to_string());
    Ok(id)
}

fn update(
    state: &HostState,
    id: u32,
    f: impl FnOnce(&mut Metric) -> Result<(), Status>,
) -> HostResult<()> {
    if id & TYPE_MASK == TYPE_MASK {
        return Err(Status::BadArgument.into());
    }
    let name = state.vm.metric_ids.get(&id).ok_or(Status::NotFound)?;
    let mut stats = state.world.stats();
    let metric = stats.metrics.get_mut(name).ok_or(Status::NotFound)?;
    Ok(f(metric)?)
}
