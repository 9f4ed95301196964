//! LPC memory (BAR 4): image persistence, mmap, poison; BAR 0 mmap areas.

mod common;

use common::*;
use ocxlpmem_regs::{CommandArea, Mmio};
use ocxlpmem_sim::{SimCard, SimConfig, SimError};

#[test]
fn image_file_keeps_contents_across_cards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.img");
    let cfg = SimConfig {
        image: Some(path.clone()),
        ..SimConfig::default()
    };
    {
        let card = manual_card(cfg.clone());
        card.region_write(4, 0x20_0000, b"persistent label")
            .unwrap();
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32 << 20);
    let card = manual_card(cfg.clone());
    let mut b = [0u8; 16];
    card.region_read(4, 0x20_0000, &mut b).unwrap();
    assert_eq!(&b, b"persistent label");
    drop(card);
    // A size mismatch is refused, the file untouched.
    let err = SimCard::new(SimConfig {
        lpc_size: 64 << 20,
        ..cfg
    })
    .unwrap_err();
    assert!(matches!(err, SimError::ImageSizeMismatch { found, .. } if found == 32 << 20));
    assert!(err.to_string().contains("lpc_size"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32 << 20);
}

#[test]
fn lpc_mmap_and_trapped_access_see_the_same_bytes() {
    let card = ready_card();
    let r = card.region(4).unwrap();
    assert_eq!(r.mmap_areas, vec![(0, 32 << 20)]);
    let (fd, off) = card.region_fd(4).unwrap();
    assert_eq!(off, 0);
    let file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    let mut map = unsafe_free_map(&file);
    map[0x1234..0x1238].copy_from_slice(b"mmap");
    let mut b = [0u8; 4];
    card.region_read(4, 0x1234, &mut b).unwrap();
    assert_eq!(&b, b"mmap");
    assert!(card.region_read(4, (32 << 20) - 2, &mut b).is_err());
    assert_eq!(card.counters().lpc_bytes_read, 4);
}

/// Maps a file through memmap2's safe-to-call wrapper used only in this test.
fn unsafe_free_map(file: &std::fs::File) -> memmap2::MmapMut {
    // SAFETY: the memfd lives as long as the card in this test, nobody truncates it.
    unsafe { memmap2::MmapMut::map_mut(file) }.unwrap()
}

#[test]
fn poisoned_ranges_fail_trapped_reads_naming_the_offset() {
    let card = ready_card();
    card.poison(0x3000..0x3010);
    card.poison(0x3008..0x3100);
    card.poison(0x10..0x10);
    card.poison((32 << 20) - 8..u64::MAX);
    assert_eq!(
        card.bad_ranges(),
        vec![0x3000..0x3100, (32 << 20) - 8..32 << 20]
    );
    let mut b = [0u8; 0x100];
    assert!(matches!(
        card.region_read(4, 0x2F80, &mut b),
        Err(SimError::Poisoned { offset: 0x3000 })
    ));
    assert!(matches!(
        card.region_read(4, 0x3050, &mut b[..8]),
        Err(SimError::Poisoned { offset: 0x3050 })
    ));
    card.region_read(4, 0x3100, &mut b).unwrap();
    card.region_write(4, 0x3000, &[1; 8]).unwrap();
}

#[test]
fn command_areas_can_be_mmap_areas_of_bar0() {
    let card = manual_card(SimConfig {
        mmap_command_areas: true,
        ..SimConfig::default()
    });
    card.clock().advance(std::time::Duration::from_secs(1));
    let r = card.region(0).unwrap();
    assert_eq!(r.mmap_areas, vec![(0x1000, 0x9000)]);
    let (fd, _) = card.region_fd(0).unwrap();
    let file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    let mut map = unsafe_free_map(&file);
    // A FW_UPDATE block written through the mapping reaches the firmware.
    map[0x1000..0x1008].copy_from_slice(b"FIRMWARE");
    let p = ocxlpmem_regs::payload::params::fw_update(0, 8);
    assert_eq!(command(&card, CommandArea::Admin, 0x02, 1, &[p]), 0);
    assert_eq!(card.firmware_image(), b"FIRMWARE");
    // And the trapped view agrees.
    assert_eq!(
        card.mmio().read_u64(0x1000).unwrap().to_le_bytes(),
        *b"FIRMWARE"
    );
    // Without the option nothing of BAR 0 is mappable.
    let plain = ready_card();
    assert!(plain.region(0).unwrap().mmap_areas.is_empty());
    assert!(plain.region_fd(0).is_none());
}
