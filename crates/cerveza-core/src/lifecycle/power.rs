//! Existing hosts: stop, restart, reboot, terminate.

use super::{Action, Lifecycle, Outcome, Results, Storage};
use crate::error::{Context, Error};
use crate::model::{InstanceState, VolumeState};
use crate::names::Hostname;

impl Lifecycle<'_> {
    /// Stops hosts, waiting for `stopped` when waiting is on.
    pub async fn stop(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each_known(hosts, |h| async move { self.stop_one(&h).await })
            .await
    }

    async fn stop_one(&self, host: &Hostname) -> Result<Outcome, Error> {
        let mut rec = self.record(host).await?;
        let region = rec.region();
        let mut inst = self.live(&rec).await?;
        let action = match inst.state {
            InstanceState::Stopped => Action::AlreadyStopped,
            InstanceState::Stopping => Action::Stopped,
            _ => {
                if inst.state == InstanceState::Pending {
                    inst = self
                        .wait_for(host, &region, &inst.id, InstanceState::Running)
                        .await?;
                }
                self.progress.step(host, &format!("stopping {}", inst.id));
                self.power(false, &region, &inst.id)
                    .await
                    .context(|| format!("{host}: stopping {}", inst.id))?;
                inst.state = InstanceState::Stopping;
                Action::Stopped
            }
        };
        if self.settings.wait && inst.state != InstanceState::Stopped {
            inst = self
                .wait_for(host, &region, &inst.id, InstanceState::Stopped)
                .await?;
        }
        self.record_state(&mut rec, &inst).await?;
        self.publish(host, &inst).await?;
        Ok(Outcome {
            host: host.clone(),
            action,
            instance: Some(inst),
            record: Some(rec),
        })
    }

    /// Stops then starts hosts (new IPs, same instance, same volumes).
    pub async fn restart(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each_known(hosts, |h| async move {
            let stopped = self.stop_one(&h).await?;
            let mut rec = stopped.record.ok_or_else(|| Error::NotFound {
                host: h.to_string(),
                message: "its record vanished while restarting".into(),
            })?;
            let inst = stopped.instance.ok_or_else(|| Self::no_instance(&rec))?;
            // The same instance keeps its volumes and its Elastic IP.
            let mut out = self.resume(&mut rec, inst, Storage::Keep).await?;
            out.action = Action::Restarted;
            Ok(out)
        })
        .await
    }

    /// Reboots running hosts (same instance, same IPs).
    pub async fn reboot(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each_known(hosts, |h| async move {
            let rec = self.record(&h).await?;
            let inst = self.live(&rec).await?;
            if inst.state != InstanceState::Running {
                return Err(Error::Refused {
                    host: h.to_string(),
                    message: format!(
                        "{} is {}, only a running host can be rebooted (use start)",
                        inst.id, inst.state
                    ),
                });
            }
            self.progress.step(&h, &format!("rebooting {}", inst.id));
            self.compute
                .reboot(&rec.region(), &inst.id)
                .await
                .context(|| format!("{h}: rebooting {}", inst.id))?;
            Ok(Outcome {
                host: h.clone(),
                action: Action::Rebooted,
                instance: Some(inst),
                record: Some(rec),
            })
        })
        .await
    }

    /// Terminates hosts. The registry keeps their profile and zone, so a later start
    /// launches a new instance like the old one; with `forget`, the record is deleted
    /// and the hostname is free for another profile or zone.
    /// With `delete_volumes`, the host's EBS volumes (in every region) are deleted too;
    /// by default they are kept, and the next start re-attaches them.
    pub async fn terminate(
        &self,
        hosts: Vec<Hostname>,
        forget: bool,
        delete_volumes: bool,
    ) -> Results {
        self.for_each_known(hosts, |h| async move {
            self.terminate_one(&h, forget, delete_volumes).await
        })
        .await
    }

    async fn terminate_one(
        &self,
        host: &Hostname,
        forget: bool,
        delete_volumes: bool,
    ) -> Result<Outcome, Error> {
        let mut rec = self.record(host).await?;
        if forget && self.is_registry_down() {
            return Err(self.needs_registry(host, "--forget deletes its registry record"));
        }
        let region = rec.region();
        let found = self.find(&rec).await?;
        let (action, inst) = match found.live {
            Some(inst) => {
                self.progress
                    .step(host, &format!("terminating {}", inst.id));
                self.compute
                    .terminate(&region, &inst.id)
                    .await
                    .context(|| format!("{host}: terminating {}", inst.id))?;
                let inst = if self.settings.wait {
                    self.wait_for(host, &region, &inst.id, InstanceState::Terminated)
                        .await?
                } else {
                    inst
                };
                (Action::Terminated, Some(inst))
            }
            None => (Action::AlreadyTerminated, None),
        };
        self.unpublish(host).await?;
        if delete_volumes {
            let vols = self.volumes_everywhere(host, &region).await?;
            // Data volumes only: root volumes go with their instance.
            for v in vols
                .iter()
                .filter(|v| v.device().is_some() && v.state != VolumeState::Deleting)
            {
                self.progress
                    .step(host, &format!("deleting volume {}", v.id));
                self.compute
                    .delete_volume(&v.region, &v.id)
                    .await
                    .context(|| format!("{host}: deleting volume {}", v.id))?;
            }
        }
        let g = rec.generation;
        // Generation 0: a record made from tags; the registry holds none to delete.
        if forget && g == 0 {
            return Ok(Outcome {
                host: host.clone(),
                action,
                instance: inst,
                record: None,
            });
        }
        if forget {
            self.registry
                .delete(self.product(), host, g)
                .await
                .context(|| format!("{host}: deleting its registry record"))?;
            return Ok(Outcome {
                host: host.clone(),
                action,
                instance: inst,
                record: None,
            });
        }
        if let Some(i) = &inst {
            rec.instance_id = Some(i.id.clone());
        }
        rec.state = InstanceState::Terminated;
        self.save(&mut rec, g).await?;
        Ok(Outcome {
            host: host.clone(),
            action,
            instance: inst,
            record: Some(rec),
        })
    }
}
