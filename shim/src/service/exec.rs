//! Execs and signals: a new exec process, kill, the terminal size, closing stdin.

use super::*;

impl Service {
    pub(super) async fn exec_req(&self, req: ExecProcessRequest) -> Res<Empty> {
        let c = self.get(&req.id)?;
        let mut spec: oci_spec::runtime::Process = serde_json::from_slice(&req.spec.value)
            .map_err(|e| {
                err(
                    Code::INVALID_ARGUMENT,
                    format!("exec {}: invalid OCI process spec: {e}", req.exec_id),
                )
            })?;
        // The request's flag decides, as in containerd's runc shim: clients make
        // their FIFOs for it (no stderr with a terminal) whatever the process
        // spec they copied from the container says.
        spec.set_terminal(Some(req.terminal));
        runtime_core::spec::check_process(&spec, "exec process").map_err(core_err)?;
        {
            let mut execs = c.execs.lock().unwrap();
            if execs.contains_key(&req.exec_id) {
                return Err(err(
                    Code::ALREADY_EXISTS,
                    format!(
                        "exec {} already exists in container {}",
                        req.exec_id, req.id
                    ),
                ));
            }
            let p = Process::new(
                &req.exec_id,
                [&req.stdin, &req.stdout, &req.stderr],
                Some(spec),
            );
            execs.insert(req.exec_id.clone(), Arc::new(p));
        }
        self.publisher.publish(Event::ExecAdded(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        }));
        Ok(Empty::new())
    }

    pub(super) async fn kill_req(&self, req: KillRequest) -> Res<Empty> {
        let (c, p) = self.process(&req.id, &req.exec_id)?;
        if p.is_stopped() {
            return Err(err(
                Code::NOT_FOUND,
                format!("process {} already finished", p.pid()),
            ));
        }
        if req.exec_id.is_empty() {
            let core = c
                .core()
                .ok_or_else(|| err(Code::NOT_FOUND, "container deleted"))?;
            core.kill(req.signal as i32, req.all).map_err(core_err)?;
        } else {
            let fd = p.pidfd.lock().unwrap();
            let fd = fd.as_ref().ok_or_else(|| {
                err(
                    Code::FAILED_PRECONDITION,
                    format!("exec {} not started", p.exec_id),
                )
            })?;
            fd.signal(req.signal as i32).map_err(core_err)?;
        }
        Ok(Empty::new())
    }

    pub(super) async fn resize_pty_req(&self, req: ResizePtyRequest) -> Res<Empty> {
        let (_c, p) = self.process(&req.id, &req.exec_id)?;
        if let Some(io) = p.io.lock().unwrap().as_ref() {
            io.resize(req.width, req.height).map_err(core_err)?;
        }
        Ok(Empty::new())
    }

    pub(super) async fn close_io_req(&self, req: CloseIORequest) -> Res<Empty> {
        let (_c, p) = self.process(&req.id, &req.exec_id)?;
        p.close_stdin();
        Ok(Empty::new())
    }
}
