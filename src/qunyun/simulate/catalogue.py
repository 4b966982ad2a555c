"""What the demo bicycle brand sells: SKUs with unit prices (元), and how likely each is as a
first order (cheap 新人 items lead, 低价转高价) or as a repurchase (高频带低频: consumables often,
a bicycle rarely)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Sku:
    code: str
    name: str
    price: Decimal
    first_weight: float  # relative chance as a first order
    repeat_weight: float  # relative chance as a repurchase


CATALOGUE: tuple[Sku, ...] = (
    Sku("bottle", "骑行水壶", Decimal("59.00"), 22, 10),
    Sku("gloves", "半指骑行手套", Decimal("129.00"), 18, 10),
    Sku("light", "USB充电车灯套装", Decimal("199.00"), 16, 9),
    Sku("service", "整车保养套餐", Decimal("299.00"), 10, 16),
    Sku("tube", "内胎+补胎工具包", Decimal("89.00"), 10, 14),
    Sku("jersey", "骑行服短袖套装", Decimal("459.00"), 8, 12),
    Sku("helmet", "一体成型骑行头盔", Decimal("599.00"), 7, 8),
    Sku("computer", "GPS码表", Decimal("899.00"), 4, 7),
    Sku("wheelset", "碳纤维轮组", Decimal("4999.00"), 0.3, 2),
    Sku("mtb", "山地车 XC 硬尾", Decimal("8999.00"), 0.4, 1.2),
    Sku("road", "公路车 碳纤维车架", Decimal("12999.00"), 0.3, 1.0),
)

FIRST_WEIGHTS = tuple(s.first_weight for s in CATALOGUE)
REPEAT_WEIGHTS = tuple(s.repeat_weight for s in CATALOGUE)
