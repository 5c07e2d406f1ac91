//! A cloud's catalogue as data: regions, images, sizes, appliance families and plumbery's
//! Dimension Data locations, read from a YAML file beside the cloud's code
//! (`digitalocean/catalogue.yaml`), so that keeping it current is an edit of data, not of
//! code. The rules over it (which size fits, which image stands in for an old appliance,
//! which region is nearest a data centre) are here, once for every cloud; docs/plumbery.md
//! gives them in words.
//!
//! The files are compiled in (`include_str!`) and parsed on first use with serde_yaml_ng,
//! the YAML crate the loader already uses; each cloud's tests parse its file, so a broken
//! file fails the build's tests, never a run.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cloud::{Appliance, appliance_slug, unknown};

/// One cloud's catalogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub regions: Vec<String>,
    /// Sorted by family, oldest release first.
    pub images: Vec<String>,
    /// An appliance name's first word -> the prefix of its family's image slugs.
    #[serde(default)]
    pub families: BTreeMap<String, String>,
    pub sizes: Vec<Size>,
    /// Dimension Data data-centre ids -> the city and the nearest region.
    #[serde(default)]
    pub locations: BTreeMap<String, Location>,
}

/// A size: its slug, CPUs and memory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub slug: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    /// Basic (shared CPU) sizes come first when `cpu:`/`memory:` choose.
    #[serde(default)]
    pub basic: bool,
}

/// Where a Dimension Data data centre was, and the region nearest it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub city: String,
    pub region: String,
}

impl Catalogue {
    /// Parses a catalogue file; the message names the file and the place.
    pub fn parse(name: &str, text: &str) -> Result<Catalogue, String> {
        serde_yaml_ng::from_str(text).map_err(|e| format!("{name}: {e}"))
    }

    /// The smallest basic size with at least `cpu` CPUs and `memory_gb` GB of memory, else
    /// the smallest other size that has both; past the largest, an error naming it.
    pub fn size_for(&'static self, cpu: u32, memory_gb: u32) -> Result<&'static str, String> {
        let memory_mb = memory_gb.saturating_mul(1024);
        let smallest = |basic: bool| {
            self.sizes
                .iter()
                .filter(|s| s.basic == basic && s.vcpus >= cpu && s.memory_mb >= memory_mb)
                .min_by_key(|s| (s.memory_mb, s.vcpus))
                .map(|s| s.slug.as_str())
        };
        smallest(true).or_else(|| smallest(false)).ok_or_else(|| {
            let most_cpus = self.sizes.iter().max_by_key(|s| (s.vcpus, s.memory_mb));
            let most_memory = self.sizes.iter().max_by_key(|s| (s.memory_mb, s.vcpus));
            let describe = |s: Option<&Size>| {
                s.map_or_else(String::new, |s| {
                    format!("`{}` ({} CPUs, {} GB)", s.slug, s.vcpus, s.memory_mb / 1024)
                })
            };
            format!(
                "no size has {cpu} CPUs and {memory_gb} GB of memory; the largest are {} and {}",
                describe(most_cpus),
                describe(most_memory)
            )
        })
    }

    pub fn size(&'static self, slug: &str) -> Option<&'static Size> {
        self.sizes.iter().find(|s| s.slug == slug)
    }

    /// The image for an appliance name: the first image whose slug starts with the name's
    /// words; else, for a release no longer sold, the first (oldest) image of its family,
    /// with a note naming both.
    pub fn image_for_appliance(
        &'static self,
        cloud: &str,
        appliance: &str,
    ) -> Result<Appliance, String> {
        let wanted = appliance_slug(appliance);
        if let Some(image) = self
            .images
            .iter()
            .find(|i| appliance_slug(i).starts_with(&wanted))
        {
            return Ok(Appliance::exact(image));
        }
        let first_word = wanted.split('-').next().unwrap_or("");
        let stand_in = self
            .families
            .get(first_word)
            .and_then(|prefix| self.images.iter().find(|i| i.starts_with(prefix.as_str())));
        match stand_in {
            Some(image) => Ok(Appliance {
                image,
                note: Some(format!(
                    "appliance `{appliance}` is not sold on {cloud} any more; `{image}`, the oldest of its family there, stands in for it"
                )),
            }),
            None => {
                let images: Vec<&str> = self.images.iter().map(String::as_str).collect();
                Err(unknown("appliance", appliance, &images))
            }
        }
    }

    pub fn check_region(&self, region: &str) -> Result<(), String> {
        if self.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            let regions: Vec<&str> = self.regions.iter().map(String::as_str).collect();
            Err(unknown("region", region, &regions))
        }
    }

    /// The region for a Dimension Data data-centre id (any case), with its city.
    pub fn region_for_location(&'static self, location: &str) -> Option<&'static Location> {
        self.locations
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(location.trim()))
            .map(|(_, l)| l)
    }

    /// Every location maps to a region of the catalogue, every family to some image, and
    /// sizes are unique: what a cloud's tests assert of its file.
    pub fn check(&self) -> Result<(), String> {
        for (id, l) in &self.locations {
            self.check_region(&l.region)
                .map_err(|e| format!("location {id}: {e}"))?;
        }
        for (word, prefix) in &self.families {
            if !self.images.iter().any(|i| i.starts_with(prefix.as_str())) {
                return Err(format!("family `{word}`: no image starts with `{prefix}`"));
            }
        }
        let mut slugs: Vec<&str> = self.sizes.iter().map(|s| s.slug.as_str()).collect();
        slugs.sort_unstable();
        if let Some(w) = slugs.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("size `{}` is listed twice", w[0]));
        }
        Ok(())
    }
}
