//! The Task API's questions: state, wait, pids, connect, stats.

use super::*;

impl Service {
    pub(super) async fn state_req(&self, req: StateRequest) -> Res<StateResponse> {
        let (c, p) = self.process(&req.id, &req.exec_id)?;
        let mut resp = StateResponse {
            id: if req.exec_id.is_empty() {
                c.id.clone()
            } else {
                p.exec_id.clone()
            },
            exec_id: p.exec_id.clone(),
            bundle: c.bundle.display().to_string(),
            pid: p.pid(),
            stdin: p.stdin.clone(),
            stdout: p.stdout.clone(),
            stderr: p.stderr.clone(),
            ..Default::default()
        };
        resp.status = EnumOrUnknown::new(match p.status() {
            Status::Created => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Paused => ApiStatus::PAUSED,
            Status::Stopped { code, at } => {
                resp.exit_status = code;
                resp.exited_at = MessageField::some(at);
                ApiStatus::STOPPED
            }
        });
        Ok(resp)
    }

    pub(super) async fn wait_req(&self, req: WaitRequest) -> Res<WaitResponse> {
        let (_c, p) = self.process(&req.id, &req.exec_id)?;
        let (code, at) = p.wait().await;
        Ok(WaitResponse {
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    pub(super) async fn pids_req(&self, req: PidsRequest) -> Res<PidsResponse> {
        let c = self.get(&req.id)?;
        let pids = {
            c.core()
                .map(|k| k.pids())
                .transpose()
                .map_err(core_err)?
                .unwrap_or_default()
        };
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub(super) async fn connect_req(&self, req: ConnectRequest) -> Res<ConnectResponse> {
        let task_pid = self.get(&req.id).map(|c| c.init.pid()).unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    pub(super) async fn stats_req(&self, req: StatsRequest) -> Res<StatsResponse> {
        let c = self.get(&req.id)?;
        let c2 = c.clone();
        let st = tokio::task::spawn_blocking(move || c2.core().map(|k| k.stats()))
            .await
            .map_err(join_err)?
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {} deleted", req.id)))?;
        let any = crate::metrics::to_any(&st)
            .map_err(|e| err(Code::INTERNAL, format!("encode metrics: {e}")))?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }
}
