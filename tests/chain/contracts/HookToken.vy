# pragma version ~=0.4.3
# pragma evm-version cancun
# Test-only ERC-20 whose transfer() calls `on_token_received()` on contract receivers
# (ERC-777 style),
# so a receiver can try to re-enter the payer.

interface Receiver:
    def on_token_received(): nonpayable

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@external
def mint(receiver: address, amount: uint256):
    self.balanceOf[receiver] += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount
    if receiver.is_contract:
        extcall Receiver(receiver).on_token_received()
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    self.allowance[sender][msg.sender] -= amount
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    return True
