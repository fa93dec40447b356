//! Starting a planned host: claim its name, find or launch its instance, bring it to
//! `running`, then its storage and its names.

use std::collections::BTreeMap;

use super::plan::StartPlan;
use super::{now, Action, Lifecycle, Outcome, Resolved, Storage};
use crate::error::{Context, Error};
use crate::model::{HostRecord, Instance, InstanceState, LaunchSpec};
use crate::ports::ProviderErrorKind;
use crate::{tags, token};

impl Lifecycle<'_> {
    pub(super) async fn start_one(&self, plan: &StartPlan) -> Result<Outcome, Error> {
        let host = &plan.host;
        let mut rec = match &plan.record {
            Some(r) => r.clone(),
            None => self.claim(plan).await?,
        };
        if rec.zone != plan.zone {
            // A claim that never got an instance moves (planning checked it may): a
            // new generation, so the launch in the new zone takes a token of its own.
            self.progress.step(
                host,
                &format!(
                    "moving its claim from {} to {} (it never got an instance)",
                    rec.zone, plan.zone
                ),
            );
            let expected = rec.generation;
            rec.zone = plan.zone.clone();
            rec.generation += 1;
            rec.state = InstanceState::Pending;
            rec.updated_at = now();
            rec.updated_by.clone_from(&self.settings.operator);
            // Written now or not at all: unlike other record writes this one cannot wait
            // for a later command, which would look for the instance in the old zone.
            self.registry
                .update(&rec, expected)
                .await
                .map_err(|e| match e.kind {
                    ProviderErrorKind::Conflict => Error::Conflict {
                        host: host.to_string(),
                        message: "its registry record was changed by another operator meanwhile; run the command again".into(),
                    },
                    _ => Error::provider(
                        format!("{host}: moving its claim to {} in the registry", plan.zone),
                        e,
                    ),
                })?;
        }
        // Each pass either finishes or bumps the generation; two bumps in one run
        // would mean tokens keep being spent under us.
        for _ in 0..3 {
            let found = self.find(&rec).await?;
            if let Some(inst) = found.live {
                return self.resume(&mut rec, inst, plan.storage()).await;
            }
            let needs_bump = rec.instance_id.is_some()
                || found.spent_tokens.contains(&token::client_token(
                    self.product(),
                    host,
                    &rec.claim,
                    rec.generation,
                ));
            if needs_bump {
                let expected = rec.generation;
                rec.generation += 1;
                rec.instance_id = None;
                rec.state = InstanceState::Pending;
                self.save(&mut rec, expected).await?;
                continue;
            }
            let resolved = plan.resolved.as_ref().map_err(|e| Error::Usage {
                host: host.to_string(),
                message: format!("its remembered profile cannot be used: {e}"),
            })?;
            return self.launch(&mut rec, resolved).await;
        }
        Err(Error::Conflict {
            host: host.to_string(),
            message: "its launch tokens keep being used by instances that end up terminated; is another tool terminating it?".into(),
        })
    }

    async fn claim(&self, plan: &StartPlan) -> Result<HostRecord, Error> {
        let rec = HostRecord {
            product: self.product().clone(),
            hostname: plan.host.clone(),
            profile: plan.profile.clone(),
            zone: plan.zone.clone(),
            instance_id: None,
            state: InstanceState::Pending,
            generation: 1,
            updated_at: now(),
            updated_by: self.settings.operator.clone(),
            claim: token::new_claim(),
        };
        self.progress.step(&plan.host, "claiming the hostname");
        match self.registry.create(&rec).await {
            Ok(()) => Ok(rec),
            Err(e) if e.kind == ProviderErrorKind::Conflict => {
                let who = self
                    .registry
                    .get(self.product(), &plan.host)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| {
                        format!(
                            " by {} (profile {}, zone {})",
                            r.updated_by, r.profile, r.zone
                        )
                    })
                    .unwrap_or_default();
                Err(Error::Conflict {
                    host: plan.host.to_string(),
                    message: format!(
                        "the hostname was just claimed{who}; another operator is starting it"
                    ),
                })
            }
            Err(source) => Err(source)
                .context(|| format!("{}: claiming the hostname in the registry", plan.host)),
        }
    }

    /// Brings a live instance to `running` and records it.
    pub(super) async fn resume(
        &self,
        rec: &mut HostRecord,
        mut inst: Instance,
        storage: Storage<'_>,
    ) -> Result<Outcome, Error> {
        let host = rec.hostname.clone();
        let region = rec.region();
        let adopted = rec.instance_id.as_ref() != Some(&inst.id);
        if adopted {
            self.progress
                .step(&host, &format!("adopting {} (found by its tags)", inst.id));
        }
        let mut action = if adopted {
            Action::Adopted
        } else {
            Action::AlreadyRunning
        };
        match inst.state {
            InstanceState::Running | InstanceState::Pending => {}
            InstanceState::Stopping | InstanceState::Stopped => {
                if inst.state == InstanceState::Stopping {
                    inst = self
                        .wait_for(&host, &region, &inst.id, InstanceState::Stopped)
                        .await?;
                }
                self.progress.step(&host, &format!("starting {}", inst.id));
                self.power(true, &region, &inst.id)
                    .await
                    .context(|| format!("{host}: starting {}", inst.id))?;
                inst.state = InstanceState::Pending;
                if !adopted {
                    action = Action::Started;
                }
            }
            ref other => {
                return Err(Error::Refused {
                    host: host.to_string(),
                    message: format!("instance {} is in state {other}", inst.id),
                })
            }
        }
        self.record_early(rec, &inst).await?;
        self.finish_running(rec, inst, action, storage).await
    }

    async fn launch(&self, rec: &mut HostRecord, resolved: &Resolved) -> Result<Outcome, Error> {
        let host = rec.hostname.clone();
        let token = token::client_token(self.product(), &host, &rec.claim, rec.generation);
        let placement = self.placement(&host, &rec.zone, &resolved.profile).await?;
        let spec = self.launch_spec(rec, resolved, placement, &token)?;
        self.progress.step(
            &host,
            &format!("launching {} in {}", resolved.profile.name, rec.zone),
        );
        let context = || format!("{host}: launching an instance in {}", rec.zone);
        // Sent again with its token while throttled or unreachable: the instance a
        // lost call made answers it.
        let inst = match self.steadily(context, || self.compute.launch(&spec)).await {
            Ok(inst) => inst,
            // The instance type and the image (or other settings) do not go together:
            // nothing was made; this host fails with what to change, the others go on.
            Err(source) if source.has_code("InvalidParameterCombination") => {
                return Err(Error::CloudRefused {
                    context: context(),
                    source,
                    hint: format!(
                        "EC2 will not run instance type {} with image {} as profile {} asks (current types need an image with ENA enabled): change the profile's instance-type or ami",
                        spec.instance_type, spec.image_id, resolved.profile.name
                    ),
                });
            }
            Err(source) => return Err(source).context(context),
        };
        #[cfg(feature = "test-hooks")]
        self.settings.failpoint(
            super::Failpoint::AfterLaunch,
            &format!("after launching {}", inst.id),
        );
        self.record_early(rec, &inst).await?;
        self.finish_running(rec, inst, Action::Launched, Storage::Ensure(resolved))
            .await
    }

    /// Records a just launched or started instance now only when nobody waits for it:
    /// a waiting host records it once, when the wait ends. A crash meanwhile loses
    /// nothing: the instance carries the host's tags and launch token, and the next
    /// start adopts it.
    async fn record_early(&self, rec: &mut HostRecord, inst: &Instance) -> Result<(), Error> {
        if self.settings.wait {
            return Ok(());
        }
        self.record_state(rec, inst).await
    }

    /// The launch request for a host: the profile, the zone and where in it, the token,
    /// the tags.
    pub fn launch_spec(
        &self,
        rec: &HostRecord,
        resolved: &Resolved,
        placement: crate::network::Placement,
        token: &str,
    ) -> Result<LaunchSpec, Error> {
        let profile = &resolved.profile;
        let region = rec.region();
        let image_id = profile.ami_for(&region)?.to_owned();
        let mut t: BTreeMap<String, String> = profile.tags.clone();
        t.insert(tags::NAME.into(), rec.hostname.to_string());
        t.insert(tags::PRODUCT.into(), self.product().to_string());
        t.insert(tags::HOST.into(), rec.hostname.to_string());
        t.insert(tags::PROFILE.into(), profile.name.to_string());
        t.insert(tags::ZONE.into(), rec.zone.to_string());
        t.insert(tags::TOKEN.into(), token.to_owned());
        if !rec.claim.is_empty() {
            t.insert(tags::CLAIM.into(), rec.claim.clone());
        }
        Ok(LaunchSpec {
            region,
            zone: rec.zone.clone(),
            image_id,
            instance_type: profile.instance_type.clone(),
            key_pair: profile.key_pair.clone(),
            placement,
            client_token: token.to_owned(),
            tags: t,
            user_data: resolved.user_data.clone(),
            imds_tokens_required: profile.imds_tokens == crate::profile::ImdsTokens::Required,
            imds_hop_limit: profile.imds_hop_limit,
        })
    }

    /// Waits for `running` (when waiting is on), records the final state, then
    /// attaches storage as `storage` says and publishes the host's names.
    pub(super) async fn finish_running(
        &self,
        rec: &mut HostRecord,
        inst: Instance,
        action: Action,
        storage: Storage<'_>,
    ) -> Result<Outcome, Error> {
        let host = rec.hostname.clone();
        let inst = if self.settings.wait && inst.state != InstanceState::Running {
            self.wait_for(&host, &rec.region(), &inst.id, InstanceState::Running)
                .await?
        } else {
            inst
        };
        let inst = match storage {
            Storage::Ensure(resolved) if inst.state == InstanceState::Running => {
                self.attach_storage(rec, inst, resolved).await?
            }
            _ => inst,
        };
        self.publish(&host, &inst).await?;
        // Recorded last: a record that shows the instance running says its volumes,
        // Elastic IP and names are done too, so a start cut short (killed, a failed
        // attach) shows as unfinished to `cerveza plan`, and the next start finishes it.
        self.record_state(rec, &inst).await?;
        Ok(Outcome {
            host,
            action,
            instance: Some(inst),
            record: Some(rec.clone()),
        })
    }
}
