"""aftersale: a real-time decision engine for post-purchase communication on Kafka and Faust."""
