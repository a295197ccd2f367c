"""Writes tests/replay/fixtures/olist/: a small Olist-shaped dataset (the real one cannot be fetched
here). Deterministic; run it again after changing it: python tests/replay/make_olist_fixture.py

40 orders from 2017-2018 (some across Sao Paulo's last DST periods), with what real copies have:
late deliveries, orders still in transit long after their promise, cancellations, an unavailable
order, repeat customers (one customer_unique_id, several customer_ids), 1-2 star reviews mostly
after late deliveries, review texts with commas, accents and newlines inside quotes, and rows that do
not join (an order without items, items and reviews of orders that are not in the file, an unknown
product, a customer missing from the customers file, a review never answered). The sellers file is
missing on purpose.
"""

from __future__ import annotations

import csv
import hashlib
import random
from datetime import datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "fixtures" / "olist"
STATES = ["SP", "SP", "SP", "RJ", "RJ", "MG", "MG", "RS", "PR", "BA", "PE", "AM", "CE", "DF", "SC"]
CITIES = {
    "SP": "sao paulo",
    "RJ": "rio de janeiro",
    "MG": "belo horizonte",
    "RS": "porto alegre",
    "PR": "curitiba",
    "BA": "salvador",
    "PE": "recife",
    "AM": "manaus",
    "CE": "fortaleza",
    "DF": "brasilia",
    "SC": "florianopolis",
}
CATEGORIES = [
    "cama_mesa_banho",
    "beleza_saude",
    "esporte_lazer",
    "informatica_acessorios",
    "moveis_decoracao",
    "utilidades_domesticas",
    "relogios_presentes",
    "telefonia",
    "brinquedos",
    "perfumaria",
]
GOOD = [
    ("", ""),
    ("", "Produto ótimo, chegou antes do prazo."),
    ("Recomendo", "Tudo certo, recomendo a loja!"),
    ("", ""),
]
BAD = [
    ("Não recebi", "Até agora não recebi o produto.\nJá entrei em contato, sem resposta."),
    ("Atrasou", 'Entrega atrasou muito, produto ok, mas "prazo" não foi cumprido, péssimo.'),
    ("", "Veio errado e com defeito;\r\nquero devolver."),
]


def hid(*parts) -> str:
    return hashlib.md5("|".join(map(str, parts)).encode()).hexdigest()


def ts(d: datetime | None) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S") if d else ""


def main() -> None:
    rng = random.Random(2018)
    OUT.mkdir(parents=True, exist_ok=True)
    products = [(hid("p", n), CATEGORIES[n % len(CATEGORIES)]) for n in range(14)]
    people = [(hid("u", n), rng.choice(STATES)) for n in range(32)]
    orders, items, customers, reviews = [], [], [], []
    start = datetime(2017, 9, 20, 8, 0, 0)
    for n in range(40):
        oid = hid("o", n)
        cid = hid("c", n)
        person, state = people[n % len(people)]  # people 0-7 order twice
        customers.append([cid, person, f"{rng.randint(1000, 99999):05d}", CITIES[state], state])
        bought = start + timedelta(days=n * 3 + rng.random() * 2, minutes=rng.randint(0, 600))
        approved = bought + timedelta(minutes=rng.randint(10, 60 * 30))
        promise_days = rng.randint(14, 30)
        estimated = (bought + timedelta(days=promise_days)).replace(hour=0, minute=0, second=0)
        carrier = approved + timedelta(hours=rng.randint(20, 100))
        transit = timedelta(days=rng.uniform(3, 12))
        kind = "delivered"
        if n in (5, 11, 17, 23, 29, 33, 37):  # late: a slow lane or a lost week
            transit = (estimated - carrier) + timedelta(days=rng.uniform(1, 12))
            kind = "late"
        elif n in (8, 26):
            kind = "shipped"  # never delivered: still "shipped" long after the promise
        elif n == 14:
            kind = "canceled_after_approval"
        elif n == 31:
            kind = "canceled_in_transit"
        elif n == 20:
            kind = "unavailable"
        elif n == 35:
            kind = "invoiced"
        delivered = carrier + transit
        status, d_carrier, d_customer = "delivered", carrier, delivered
        if kind == "shipped":
            status, d_customer = "shipped", None
        elif kind == "canceled_after_approval":
            status, d_carrier, d_customer = "canceled", None, None
        elif kind == "canceled_in_transit":
            status, d_customer = "canceled", None
        elif kind == "unavailable":
            status, d_carrier, d_customer = "unavailable", None, None
        elif kind == "invoiced":
            status, d_carrier, d_customer = "invoiced", None, None
        if n == 2:
            d_carrier = None  # delivered, but the carrier hand-off was never recorded
        orders.append([oid, cid, status, ts(bought), ts(approved), ts(d_carrier), ts(d_customer), ts(estimated)])
        if n != 12:  # order 12 has no items (a partial export)
            k = 1 + (n % 4 == 0) + (n % 7 == 0)
            for i in range(1, k + 1):
                product = products[(n + (i if n % 3 else 0)) % len(products)][0]
                if n == 19:
                    product = hid("p", "unknown")  # not in the products file
                items.append(
                    [
                        oid,
                        i,
                        product,
                        hid("s", n % 6),
                        ts(approved + timedelta(days=3)),
                        f"{rng.uniform(19, 450):.2f}",
                        f"{rng.uniform(7, 60):.2f}",
                    ]
                )
        if d_customer is not None or kind in ("shipped", "canceled_in_transit"):
            late = kind in ("late", "shipped", "canceled_in_transit")
            if late:
                score = rng.choice([1, 1, 2, 2, 3])
            else:
                score = rng.choice([5, 5, 5, 4, 4, 3, 1])
            if n in (3, 9):
                continue  # never reviewed
            sent = (d_customer or estimated) + timedelta(days=1)
            sent = sent.replace(hour=0, minute=0, second=0)
            answered = sent + timedelta(days=rng.randint(0, 4), hours=rng.randint(1, 20), minutes=rng.randint(0, 59))
            title, text = rng.choice(BAD if score <= 2 else GOOD)
            reviews.append([hid("r", n), oid, score, title, text, ts(sent), ts(answered if n != 27 else None)])
    # Rows that do not join.
    lost = hid("o", "missing-from-orders")
    items.append([lost, 1, products[0][0], hid("s", 1), "2018-01-10 10:00:00", "59.90", "15.10"])
    items.append([lost, 2, products[0][0], hid("s", 1), "2018-01-10 10:00:00", "59.90", "15.10"])
    reviews.append(
        [
            hid("r", "orphan1"),
            hid("o", "orphan1"),
            1,
            "",
            "Pedido nunca chegou",
            "2018-02-01 00:00:00",
            "2018-02-02 12:13:14",
        ]
    )
    reviews.append([hid("r", "orphan2"), hid("o", "orphan2"), 5, "", "", "2018-02-03 00:00:00", "2018-02-05 09:00:00"])
    del customers[16]  # order 16's customer is missing from the customers file
    rng.shuffle(customers)

    def write(name, header, rows, quote_all=True):
        with open(OUT / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)

    write(
        "olist_orders_dataset.csv",
        [
            "order_id",
            "customer_id",
            "order_status",
            "order_purchase_timestamp",
            "order_approved_at",
            "order_delivered_carrier_date",
            "order_delivered_customer_date",
            "order_estimated_delivery_date",
        ],
        orders,
    )
    write(
        "olist_order_items_dataset.csv",
        ["order_id", "order_item_id", "product_id", "seller_id", "shipping_limit_date", "price", "freight_value"],
        items,
        quote_all=False,
    )
    write(
        "olist_customers_dataset.csv",
        ["customer_id", "customer_unique_id", "customer_zip_code_prefix", "customer_city", "customer_state"],
        customers,
    )
    write(
        "olist_order_reviews_dataset.csv",
        [
            "review_id",
            "order_id",
            "review_score",
            "review_comment_title",
            "review_comment_message",
            "review_creation_date",
            "review_answer_timestamp",
        ],
        reviews,
        quote_all=False,
    )
    write(
        "olist_products_dataset.csv",
        [
            "product_id",
            "product_category_name",
            "product_name_lenght",
            "product_description_lenght",
            "product_photos_qty",
            "product_weight_g",
            "product_length_cm",
            "product_height_cm",
            "product_width_cm",
        ],
        [
            [
                p,
                c,
                rng.randint(20, 60),
                rng.randint(100, 2000),
                rng.randint(1, 5),
                rng.randint(100, 9000),
                rng.randint(10, 60),
                rng.randint(2, 40),
                rng.randint(10, 50),
            ]
            for p, c in products
        ],
        quote_all=False,
    )
    # olist_sellers_dataset.csv: missing on purpose (a partial copy).


if __name__ == "__main__":
    main()
