//! Routing requests: the owner of a grain under the current table, locating
//! an activation for a local request, and a call from another node.

use super::*;

impl PlacementSupervisor {
    /// The owner of `(kind, id)` under the current table, or why there is
    /// none.
    pub(super) fn owner(&self, kind: &str, id: &str) -> Result<NodeId, PlacementError> {
        let table = self.table.as_ref().ok_or(ProvisioningError::Unavailable(
            "placement paused: no topology has been published yet",
        ))?;
        if self.follower.lock().behind().is_some() {
            // R3.4: never place on a view older than a change this node
            // has been told about; its topology is on its way.
            return Err(ProvisioningError::Unavailable(
                "placement paused: the active provider changed and its topology has not arrived yet",
            )
            .into());
        }
        Ok(table.place(kind, id, None)?.node_id.clone())
    }

    pub(super) fn locate(
        &mut self,
        kind: &str,
        id: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Target, PlacementError> {
        if self.leaving {
            return Err(ProvisioningError::Draining.into());
        }
        let owner = self.owner(kind, id)?;
        if owner == self.shared.local {
            self.activation(kind, id, ctx).map(Target::Local)
        } else {
            Ok(Target::Remote(owner))
        }
    }

    pub(super) fn on_call(&mut self, call: GrainCall, ctx: &mut Context<Self>) {
        let Some(remoting) = self.shared.remoting.clone() else {
            return;
        };
        let reply = Reply::new(ReplyTarget::Remote {
            node: call.from.clone(),
            req_id: call.req_id,
            remoting,
        });
        let target = match self.owner(&call.kind, &call.id) {
            _ if self.leaving => Err(PlacementError::NotOwner(format!(
                "node {} is leaving the cluster",
                self.shared.local
            ))),
            Ok(owner) if owner == self.shared.local => self.activation(&call.kind, &call.id, ctx),
            Ok(owner) => Err(PlacementError::NotOwner(format!(
                "node {} does not own {}/{} in its topology (seq_no {}): {owner} does",
                self.shared.local,
                call.kind,
                call.id,
                self.table.as_ref().map_or(0, |t| t.seq_no())
            ))),
            // This node cannot place (draining, paused): the caller's view
            // is ahead or behind ours; it places again.
            Err(PlacementError::Provisioning(e)) => Err(PlacementError::NotOwner(format!(
                "node {} cannot place {}/{}: {e} ({})",
                self.shared.local,
                call.kind,
                call.id,
                e.code()
            ))),
            Err(e) => Err(e),
        };
        match target {
            Ok(a) => {
                if let Err(
                    TellError::Closed(GrainMsg::Request(env))
                    | TellError::Full(GrainMsg::Request(env)),
                ) = a.tell(GrainMsg::Request(Envelope {
                    payload: call.payload,
                    reply,
                })) {
                    env.reply.send(Err(PlacementError::HandedOff));
                }
            }
            Err(e) => reply.send(Err(e)),
        }
    }
}
