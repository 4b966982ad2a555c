"""Who the members are: persona (age, gender, occupation, region, interests) and behaviour
(activity and purchase propensity), drawn for the cyclists of a bicycle brand's community."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Region → (share of members, cities). The seed's regional groups: 华东群、华南群、东北群…
REGIONS: dict[str, tuple[float, tuple[str, ...]]] = {
    "华东": (0.30, ("上海", "杭州", "南京", "苏州", "合肥", "宁波")),
    "华南": (0.18, ("广州", "深圳", "厦门", "福州", "南宁")),
    "华北": (0.15, ("北京", "天津", "石家庄", "太原")),
    "西南": (0.11, ("成都", "重庆", "昆明", "贵阳")),
    "华中": (0.10, ("武汉", "长沙", "郑州", "南昌")),
    "东北": (0.09, ("沈阳", "大连", "长春", "哈尔滨")),
    "西北": (0.07, ("西安", "兰州", "银川", "乌鲁木齐")),
}
REGION_NAMES = tuple(REGIONS)
REGION_WEIGHTS = tuple(w for w, _ in REGIONS.values())

OCCUPATIONS = (
    ("程序员", 14), ("工程师", 12), ("教师", 7), ("医生", 5), ("销售", 8), ("公务员", 6),
    ("设计师", 6), ("企业主", 6), ("学生", 9), ("金融从业者", 6), ("自由职业", 6),
    ("退休", 4), ("运动教练", 2), ("产品经理", 5), ("外卖骑手", 2), ("律师", 2),
)  # fmt: skip
OCCUPATION_NAMES = tuple(o for o, _ in OCCUPATIONS)
OCCUPATION_WEIGHTS = tuple(w for _, w in OCCUPATIONS)

INTERESTS = (
    ("公路骑行", 10), ("山地越野", 6), ("城市通勤", 7), ("长途骑行", 5), ("骑行装备", 8),
    ("赛事", 4), ("户外露营", 4), ("健身减脂", 5), ("摄影", 3), ("单车改装", 3), ("铁人三项", 1),
)  # fmt: skip
INTEREST_NAMES = tuple(i for i, _ in INTERESTS)
INTEREST_WEIGHTS = tuple(w for _, w in INTERESTS)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
NICK_PREFIX = ("骑行", "单车", "风一样的", "爱骑车的", "周末骑士", "山路", "追风", "铁腿", "老", "小")
NICK_BODY = (
    "阿杰", "大鹏", "小雨", "老K", "Leo", "Tony", "阿飞", "胖虎", "木木", "晓峰", "Coco", "大牛", "阿强", "Mia",
)  # fmt: skip
# Spammers by kind: most post ads, some solicit contacts, a few flood.
SPAM_KINDS = ("ad", "contact", "flood")
SPAM_WEIGHTS = (0.5, 0.3, 0.2)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰飞鹏斌宇浩凯健俊帆帅旭宁龙林欣"


@dataclass(slots=True)
class Persona:
    display_name: str
    gender: str  # male | female
    birth_year: int
    occupation: str
    region: str  # one of REGIONS
    city: str
    interests: tuple[str, ...]
    activity: float  # expected messages per day while engaged
    purchase: float  # multiplier of the base purchase rates
    # "" for an ordinary member; a spammer's kind: "ad" (ads and links), "contact" (phone
    # numbers, WeChat ids, 加我微信) or "flood" (the same text several times in a row)
    spam_kind: str = ""

    @property
    def spammer(self) -> bool:
        return bool(self.spam_kind)


def _name(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.45:
        return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
    if style < 0.8:
        return rng.choice(NICK_PREFIX) + rng.choice(NICK_BODY)
    return f"{rng.choice(NICK_BODY)}{rng.randint(1, 99)}"


def draw_persona(rng: random.Random, *, region: str | None = None, spam_rate: float = 0.015) -> Persona:
    """One member. Activity is heavy-tailed (a few head users talk most, most members lurk)."""
    region = region or rng.choices(REGION_NAMES, weights=REGION_WEIGHTS)[0]
    city = rng.choice(REGIONS[region][1])
    gender = "male" if rng.random() < 0.78 else "female"  # cycling communities skew male
    age = max(16, min(68, int(rng.gauss(34, 9))))
    k = 1 + (rng.random() < 0.6) + (rng.random() < 0.3)
    interests: list[str] = []
    while len(interests) < k:
        pick = rng.choices(INTEREST_NAMES, weights=INTEREST_WEIGHTS)[0]
        if pick not in interests:
            interests.append(pick)
    # Log-normal: median ~0.3 messages a day, a long tail of head users (KOL/KOC) above 5.
    activity = min(12.0, math.exp(rng.gauss(math.log(0.3), 1.15)))
    purchase = math.exp(rng.gauss(0.0, 0.8))
    if "骑行装备" in interests or "单车改装" in interests:
        purchase *= 1.5
    return Persona(
        display_name=_name(rng),
        gender=gender,
        birth_year=2026 - age,
        occupation=rng.choices(OCCUPATION_NAMES, weights=OCCUPATION_WEIGHTS)[0],
        region=region,
        city=city,
        interests=tuple(interests),
        activity=activity,
        purchase=purchase,
        spam_kind=rng.choices(SPAM_KINDS, weights=SPAM_WEIGHTS)[0] if rng.random() < spam_rate else "",
    )
