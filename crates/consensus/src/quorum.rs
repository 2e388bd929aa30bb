//! Quorum arithmetic: how many yes votes a proposal needs, and whether it can still get them.
//!
//! Owns only integer math over counts, so it is exact and cheap (no floats, no member lists).

use lockstep_proto::message::RoomOptions;

/// The rule a democratic room decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// Yes votes must be *more than* this percentage of the voters (0..=99; 50 is a strict
    /// majority).
    pub percent: u8,
    /// Yes votes must be at least this many, capped at the number of voters so a small room is
    /// never stuck.
    pub min_voters: u32,
}

/// Where a tally stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Enough yes votes.
    Passed,
    /// Can no longer get enough yes votes, even if every undecided voter said yes.
    Rejected,
    /// Still open.
    Open,
}

impl Quorum {
    /// The quorum a room's options ask for.
    pub fn from_options(options: &RoomOptions) -> Self {
        Quorum {
            percent: options.quorum_percent.min(99),
            min_voters: options.min_voters.max(1),
        }
    }

    /// Yes votes needed with `voters` voters present (at least 1).
    pub fn needed(&self, voters: u32) -> u32 {
        let voters64 = u64::from(voters);
        // Smallest y with 100 * y > percent * voters.
        let by_percent = u64::from(self.percent) * voters64 / 100 + 1;
        let by_minimum = u64::from(self.min_voters.min(voters));
        let needed = by_percent.max(by_minimum).max(1);
        // percent <= 99 keeps by_percent <= voters for voters >= 1; the cast cannot truncate.
        u32::try_from(needed).unwrap_or(u32::MAX)
    }

    /// Where a tally of `yes` and `no` votes stands among `voters` present voters.
    pub fn standing(&self, yes: u32, no: u32, voters: u32) -> Standing {
        let needed = self.needed(voters);
        if yes >= needed {
            return Standing::Passed;
        }
        let undecided = voters.saturating_sub(yes.saturating_add(no));
        if yes.saturating_add(undecided) < needed {
            Standing::Rejected
        } else {
            Standing::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn majority() -> Quorum {
        Quorum {
            percent: 50,
            min_voters: 1,
        }
    }

    #[test]
    fn a_strict_majority_by_default() {
        let q = majority();
        assert_eq!(q.needed(1), 1);
        assert_eq!(q.needed(2), 2);
        assert_eq!(q.needed(3), 2);
        assert_eq!(q.needed(4), 3);
        assert_eq!(q.needed(10), 6);
        assert_eq!(q.needed(10_000), 5_001);
    }

    #[test]
    fn a_room_of_one_decides_alone() {
        assert_eq!(majority().standing(1, 0, 1), Standing::Passed);
    }

    #[test]
    fn minimum_voters_is_capped_by_those_present() {
        let q = Quorum {
            percent: 0,
            min_voters: 3,
        };
        assert_eq!(q.needed(10), 3);
        assert_eq!(q.needed(2), 2);
        assert_eq!(q.needed(1), 1);
        assert_eq!(q.needed(0), 1);
    }

    #[test]
    fn unanimity_is_expressible() {
        let q = Quorum {
            percent: 99,
            min_voters: 1,
        };
        assert_eq!(q.needed(10), 10);
        assert_eq!(q.needed(100), 100);
        assert_eq!(q.standing(9, 1, 10), Standing::Rejected);
    }

    #[test]
    fn rejected_once_it_cannot_pass() {
        let q = majority();
        // 5 voters need 3: 1 yes, 2 no, 2 undecided can still reach 3.
        assert_eq!(q.standing(1, 2, 5), Standing::Open);
        // 1 yes, 3 no: at most 2.
        assert_eq!(q.standing(1, 3, 5), Standing::Rejected);
        assert_eq!(q.standing(3, 2, 5), Standing::Passed);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let q = Quorum {
            percent: 99,
            min_voters: u32::MAX,
        };
        assert_eq!(q.needed(u32::MAX), u32::MAX);
        assert_eq!(q.standing(u32::MAX, 0, u32::MAX), Standing::Passed);
    }
}
